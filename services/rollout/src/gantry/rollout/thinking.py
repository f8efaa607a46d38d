"""Heavy thinking (LongCat-Flash-Thinking): breadth, then depth.

k reasoning paths are sampled in parallel for the same prompt; a reflection pass reads
all of them, compares them and writes the final answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gantry.core.errors import InvalidArgument
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout import prompts
from gantry.rollout.engine.types import Sample, SamplingParams
from gantry.rollout.generator import Generator, complete

if TYPE_CHECKING:
    from gantry.core.server import Runtime
    from gantry.rollout.model import ServedModel

DEFAULT_PATHS = 4
MAX_PATHS = 32
REFLECTION_INSTRUCTION = (
    "Above are several independent attempts at the question. Check each one for errors, "
    "compare their conclusions, and decide which reasoning holds. End with the final answer "
    "on its own line as 'Answer: ...'."
)


def final_answer(text: str) -> str:
    """The text after the last "Answer:", else the last non-empty line."""
    at = text.lower().rfind("answer:")
    if at != -1:
        rest = text[at + len("answer:") :].strip()
        return rest.splitlines()[0].strip() if rest else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _question(prompt: rollout_pb2.Prompt) -> tuple[list[dict[str, str]], str]:
    kind = prompt.WhichOneof("kind")
    if kind == "text":
        return [{"role": "user", "content": prompt.text}], prompt.text
    if kind == "messages":
        messages = prompts.chat_messages(prompt.messages, "prompt.messages")
        return messages, messages[-1]["content"]
    raise InvalidArgument.for_field("prompt", "heavy thinking takes text or messages")


async def heavy_think(
    model: ServedModel,
    runtime: Runtime,
    request: rollout_pb2.HeavyThinkRequest,
    *,
    client: str = "",
) -> rollout_pb2.HeavyThinkResponse:
    generator = model.generator
    k = request.num_paths or DEFAULT_PATHS
    sequences = model.limits.heavy_think(request, MAX_PATHS)
    if not 1 <= k <= MAX_PATHS:
        raise InvalidArgument.for_field("num_paths", f"must be between 1 and {MAX_PATHS}")
    messages, question = _question(request.prompt)
    path_params = prompts.sampling(request.path_sampling, "path_sampling")
    path_params = SamplingParams(**{**path_params.__dict__, "n": k})
    generator.check_capacity(client, max(sequences, k))
    ids = await runtime.run_blocking(
        lambda: prompts.apply_chat(generator.tokenizer, messages, field="prompt")
    )
    if len(ids) + path_params.max_tokens >= generator.context_length:
        raise InvalidArgument.for_field("prompt", "the prompt leaves no room for reasoning paths")
    paths = await complete(generator, ids, path_params, client)

    reflection_params = prompts.sampling(
        request.reflection_sampling, "reflection_sampling", default_max=512
    )
    if not request.reflection_sampling.HasField("temperature"):
        reflection_params = SamplingParams(**{**reflection_params.__dict__, "temperature": 0.0})
    reflection_params = SamplingParams(**{**reflection_params.__dict__, "n": 1})
    instruction = request.reflection_instruction or REFLECTION_INSTRUCTION
    reflection_ids = await runtime.run_blocking(
        _reflection_prompt, generator, question, paths, instruction, reflection_params.max_tokens
    )
    (reflection,) = await complete(generator, reflection_ids, reflection_params, client)

    prompt_tokens = len(ids) + len(reflection_ids)
    produced = sum(len(p.token_ids) for p in paths) + len(reflection.token_ids)
    return rollout_pb2.HeavyThinkResponse(
        paths=[
            rollout_pb2.ThinkingPath(
                index=p.index,
                text=p.text,
                answer=final_answer(p.text),
                finish_reason=prompts.FINISH[p.finish_reason]
                if p.finish_reason
                else sampling_pb2.FINISH_REASON_UNSPECIFIED,
                completion_tokens=len(p.token_ids),
            )
            for p in paths
        ],
        reflection=reflection.text,
        answer=final_answer(reflection.text),
        usage=chat_pb2.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            total_tokens=prompt_tokens + produced,
        ),
    )


def _reflection_prompt(
    generator: Generator, question: str, paths: list[Sample], instruction: str, budget: int
) -> list[int]:
    """Question + every path + instruction; paths are shortened evenly if they do not fit."""
    room = generator.context_length - budget - 1
    keep = max(len(p.text) for p in paths) if paths else 0
    while True:
        attempts = "\n\n".join(f"Attempt {p.index + 1}:\n{p.text[:keep]}" for p in paths)
        content = f"Question:\n{question}\n\n{attempts}\n\n{instruction}"
        ids = prompts.apply_chat(generator.tokenizer, [{"role": "user", "content": content}])
        if len(ids) <= room or keep == 0:
            return ids[-room:]
        keep = keep * 3 // 4
