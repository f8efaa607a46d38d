"""Structured output: every sample of a constrained request follows its format (JSON
Schema, regex, choice), through the engine, the gRPC service and the OpenAI front, on the
real tiny model sampling at temperature 1 (it has no idea of the format: only the mask
keeps it valid)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import openai
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.testing.threaded import serve_in_thread
from gantry.models.loading import CausalLM
from gantry.proto.common.v1 import sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.engine.types import FinishReason, Sample, SamplingParams, StructuredOutput
from gantry.rollout.generator import TransformersGenerator, complete
from gantry.rollout.limits import MAX_FORMAT_BYTES
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings, engine_of, error_of

SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 4},
        "reason": {"type": "string", "maxLength": 8},
    },
    "required": ["score", "reason"],
}


def follows_schema(text: str) -> bool:
    value = json.loads(text)
    return (
        set(value) == {"score", "reason"}
        and type(value["score"]) is int
        and 1 <= value["score"] <= 4
        and isinstance(value["reason"], str)
        and len(value["reason"]) <= 8
    )


FORMATS: list[tuple[StructuredOutput, Any]] = [
    (StructuredOutput(json_schema=json.dumps(SCHEMA)), follows_schema),
    (StructuredOutput(regex="[1-4]"), lambda t: re.fullmatch("[1-4]", t) is not None),
    (StructuredOutput(choice=("yes", "no")), lambda t: t in ("yes", "no")),
]


@pytest.fixture(scope="module")
def gen(bundle: CausalLM) -> Iterator[TransformersGenerator]:
    generator = TransformersGenerator(bundle, max_batch_size=16)
    yield generator
    generator.engine.stop()


def run(gen: TransformersGenerator, params: SamplingParams, prompt: str = "Rate:") -> list[Sample]:
    ids = gen.tokenizer.encode(prompt)
    return asyncio.run(asyncio.wait_for(complete(gen, ids, params), timeout=120))


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "valid"), FORMATS, ids=lambda x: getattr(x, "kind", ""))
def test_every_sample_follows_the_format(
    gen: TransformersGenerator, spec: StructuredOutput, valid: Any
) -> None:
    n = 8 if spec.json_schema else 32  # JSON samples are long on an untrained model
    params = SamplingParams(max_tokens=160, n=n, seed=7, structured_output=spec)
    samples = run(gen, params)
    assert [s.finish_reason for s in samples] == [FinishReason.STOP] * n
    assert all(valid(s.text) for s in samples), [s.text for s in samples]
    assert len({s.text for s in samples}) > 1  # temperature 1 still samples


def test_free_text_from_the_same_model_breaks_the_format(gen: TransformersGenerator) -> None:
    """The control: without the mask the tiny model does not produce a digit 1-4 alone."""
    samples = run(gen, SamplingParams(max_tokens=8, n=8, seed=7))
    assert not any(re.fullmatch("[1-4]", s.text) for s in samples)


def test_constrained_and_free_sequences_share_a_batch(gen: TransformersGenerator) -> None:
    async def both() -> tuple[list[Sample], list[Sample]]:
        ids = gen.tokenizer.encode("Rate:")
        constrained = SamplingParams(
            max_tokens=40, n=4, seed=3, structured_output=StructuredOutput(regex="[a-c]{3}")
        )
        free = SamplingParams(max_tokens=12, n=4, seed=3, ignore_eos=True)
        return tuple(
            await asyncio.gather(complete(gen, ids, constrained), complete(gen, ids, free))
        )  # type: ignore[return-value]

    constrained, free = asyncio.run(asyncio.wait_for(both(), timeout=120))
    assert all(re.fullmatch("[a-c]{3}", s.text) for s in constrained)
    assert all(len(s.token_ids) == 12 for s in free)  # no mask, no early stop
    assert not any(re.fullmatch("[a-c]*", s.text) for s in free)


def test_greedy_constrained_output_is_deterministic(gen: TransformersGenerator) -> None:
    spec = StructuredOutput(json_schema=json.dumps(SCHEMA))
    params = SamplingParams(max_tokens=160, temperature=0.0, structured_output=spec)
    first, second = run(gen, params), run(gen, params)
    assert first[0].token_ids == second[0].token_ids
    assert follows_schema(first[0].text)


def test_raw_logprobs_ignore_the_mask_processed_ones_include_it(
    gen: TransformersGenerator,
) -> None:
    """Same seed, same tokens; RAW is the unconstrained model's logprob, PROCESSED the
    masked distribution's, which renormalises over fewer tokens: never lower, and higher
    wherever the mask removed any probability."""
    spec = StructuredOutput(choice=("yes", "no", "maybe"))
    raw = run(gen, SamplingParams(max_tokens=8, n=4, seed=5, structured_output=spec))
    processed = run(
        gen,
        SamplingParams(
            max_tokens=8, n=4, seed=5, structured_output=spec, logprobs_mode="processed"
        ),
    )
    for r, p in zip(raw, processed, strict=True):
        assert r.token_ids == p.token_ids
        assert all(b >= a - 1e-5 for a, b in zip(r.logprobs, p.logprobs, strict=True))
        assert p.logprobs[0] > r.logprobs[0] + 0.1  # the first step masks most of the vocab


# ----- the gRPC service and the OpenAI front -----
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RolloutService, str, str]]:
    settings = RolloutSettings(
        **common_settings(tmp_path_factory.mktemp("structured")),
        model_name="gantry-tiny",
        max_batch_size=16,
        torch_threads=1,
        openai_port=free_port(),
    )
    service = RolloutService(settings)
    with serve_in_thread(service) as running:
        assert service.openai is not None
        yield service, f"127.0.0.1:{running.port}", f"http://127.0.0.1:{service.openai.port}/v1"


@pytest.fixture(scope="module")
def stub(server: tuple[RolloutService, str, str]) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    with sync_channel(server[1], token=TOKEN) as channel:
        yield rollout_pb2_grpc.RolloutServiceStub(channel)


def generate(spec: sampling_pb2.StructuredOutput, **sampling: Any) -> rollout_pb2.GenerateRequest:
    return rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=[rollout_pb2.Prompt(text="Judge:")],
            sampling=sampling_pb2.SamplingParams(structured_output=spec, **sampling),
        )
    )


def test_generate_with_a_json_schema(
    server: tuple[RolloutService, str, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    grammars = engine_of(server[0]).grammars
    spec = sampling_pb2.StructuredOutput(json_schema=json.dumps(SCHEMA))
    request = generate(spec, n=4, seed=11, max_tokens=160, temperature=1.0)
    reply = stub.Generate(request, timeout=120)
    completions = reply.results[0].completions
    assert all(c.finish_reason == sampling_pb2.FINISH_REASON_STOP for c in completions)
    assert all(follows_schema(c.text) for c in completions)
    before = grammars.compiles
    stub.Generate(request, timeout=120)
    assert grammars.compiles == before  # compiled once, then cached


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (sampling_pb2.StructuredOutput(json_schema="{not json"), "json_schema", "parse JSON"),
        (sampling_pb2.StructuredOutput(json_schema='{"type": "wat"}'), "json_schema", "wat"),
        (sampling_pb2.StructuredOutput(regex="[1-"), "regex", "Unclosed"),
        (sampling_pb2.StructuredOutput(grammar="root ::= missing"), "grammar", "missing"),
        (
            sampling_pb2.StructuredOutput(choice=sampling_pb2.ChoiceList()),
            "choice",
            "must not be empty",
        ),
        (sampling_pb2.StructuredOutput(), "", "exactly one"),
    ],
)
def test_bad_formats_are_invalid_argument_naming_the_field(
    stub: rollout_pb2_grpc.RolloutServiceStub,
    spec: sampling_pb2.StructuredOutput,
    field: str,
    words: str,
) -> None:
    error = error_of(stub.Generate, generate(spec), timeout=30)
    assert isinstance(error, errors.InvalidArgument)
    expected = "input.sampling.structured_output" + (f".{field}" if field else "")
    assert [v.field for v in error.violations] == [expected]
    assert words in error.message
    assert "/project/cpp" not in error.message  # XGrammar's source location is dropped


def test_an_oversized_format_is_refused_before_compiling(
    server: tuple[RolloutService, str, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    grammars = engine_of(server[0]).grammars
    before = grammars.compiles
    huge = json.dumps({"enum": ["x" * 1000] * (MAX_FORMAT_BYTES // 1000 + 1)})
    error = error_of(stub.Generate, generate(sampling_pb2.StructuredOutput(json_schema=huge)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "input.sampling.structured_output.json_schema" in error.message
    assert "limit" in error.message
    assert grammars.compiles == before


def test_rpcs_that_parse_their_own_outputs_refuse_a_format(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    request = rollout_pb2.HeavyThinkRequest(
        prompt=rollout_pb2.Prompt(text="2+2?"),
        path_sampling=sampling_pb2.SamplingParams(
            structured_output=sampling_pb2.StructuredOutput(regex="[0-9]")
        ),
    )
    error = error_of(stub.HeavyThink, request, timeout=30)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "path_sampling.structured_output" in error.message


@pytest.fixture(scope="module")
def client(server: tuple[RolloutService, str, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[2], api_key=TOKEN, max_retries=0, timeout=120)


MESSAGES: list[Any] = [{"role": "user", "content": "Rate the answer 1-4 with a reason."}]


def test_openai_json_schema_response_format(client: openai.OpenAI) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True},
    }
    reply = client.chat.completions.create(
        model="gantry-tiny",
        messages=MESSAGES,
        n=4,
        seed=2,
        max_tokens=160,
        response_format=response_format,
    )
    assert all(c.finish_reason == "stop" for c in reply.choices)
    assert all(follows_schema(c.message.content or "") for c in reply.choices)


def test_openai_json_object_response_format(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gantry-tiny",
        messages=MESSAGES,
        n=2,
        seed=4,
        max_tokens=200,
        temperature=0.0,
        response_format={"type": "json_object"},
    )
    for choice in reply.choices:
        if choice.finish_reason == "stop":  # an object may be cut by max_tokens
            assert isinstance(json.loads(choice.message.content or ""), dict)
        else:
            assert (choice.message.content or "").startswith("{")


@pytest.mark.parametrize(
    ("response_format", "words"),
    [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wat"}}}, "wat"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "schema"),
        ({"type": "grammar"}, "type must be"),
    ],
)
def test_openai_bad_response_format_is_400(
    client: openai.OpenAI, response_format: Any, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gantry-tiny",
            messages=MESSAGES,
            response_format=response_format,  # type: ignore[arg-type]  # wrong on purpose
        )
    body: Any = info.value.body
    assert body["param"].startswith("response_format")
    assert words in body["message"]


def test_json_strings_never_hold_raw_control_characters(gen: TransformersGenerator) -> None:
    """XGrammar's length-bounded strings allow raw control bytes; ours refuse them."""
    import xgrammar as xgr

    compiled = gen.grammars.compile(StructuredOutput(json_schema=json.dumps(SCHEMA)))
    for text, ok in [
        ('{"score": 2, "reason": "a\\u0006"}', False),
        ('{"score": 2, "reason": "ok"}', True),
    ]:
        matcher = xgr.GrammarMatcher(compiled)
        accepted = matcher.accept_string(text.replace("\\u0006", "\x06"))
        assert (accepted and matcher.is_completed()) is ok
