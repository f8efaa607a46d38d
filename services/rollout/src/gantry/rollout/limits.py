"""Limits first: the sizes and counts of every rollout request, checked on arrival.

Everything here is a length or a count read off the parsed message: no tokenization, no
template rendering, no model work. A request that passes can still be refused later
(a prompt that tokenizes past the context window), but only after bounded work.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import descriptor, duration_pb2

from gantry.core.errors import InvalidArgument
from gantry.core.limits import check_bytes, check_count, check_id, check_total_bytes
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.settings import RolloutSettings

# No tokenizer in use averages more than this many UTF-8 bytes per token, so a prompt
# longer than context_length x this cannot fit the context window: refuse it unread.
MAX_BYTES_PER_TOKEN = 32
SHORT_TEXT_BYTES = 4096  # titles, persona descriptions, keywords
MAX_KEYWORDS = 64
MAX_EPISODE_TIMEOUT_S = 7 * 24 * 3600
# Structured output: a format's text (schema, regex, grammar, all choices together) and
# the number of choices. Compile time grows with the format, so it is bounded before it.
MAX_FORMAT_BYTES = 64 * 1024
MAX_CHOICES = 1024


def check_enum(value: int, enum: descriptor.EnumDescriptor, *, field: str) -> None:
    if value not in enum.values_by_number:
        raise InvalidArgument.for_field(field, f"{value} is not a known {enum.name} value")


@dataclass(frozen=True)
class RequestLimits:
    settings: RolloutSettings
    context_length: int

    @property
    def prompt_bytes(self) -> int:
        return min(self.settings.max_prompt_bytes, self.context_length * MAX_BYTES_PER_TOKEN)

    @property
    def max_tokens(self) -> int:
        return min(self.settings.max_completion_tokens, self.context_length - 1)

    # ----- shared pieces -----
    def sampling(self, params: sampling_pb2.SamplingParams, field: str) -> None:
        s = self.settings
        check_count(params.n, field=f"{field}.n", limit=s.max_n)
        check_count(params.max_tokens, field=f"{field}.max_tokens", limit=self.max_tokens)
        check_count(len(params.stop), field=f"{field}.stop", limit=s.max_stop_strings)
        for i, stop in enumerate(params.stop):
            check_bytes(stop, field=f"{field}.stop[{i}]", limit=s.max_stop_bytes)
        check_count(
            len(params.stop_token_ids), field=f"{field}.stop_token_ids", limit=s.max_stop_strings
        )
        if params.HasField("structured_output"):
            self.structured_output(params.structured_output, f"{field}.structured_output")

    def free_text_sampling(self, params: sampling_pb2.SamplingParams, field: str) -> None:
        """`sampling` for RPCs whose outputs are parsed by Gantry itself (episodes, heavy
        thinking, playtests): their prompts ask for a format of their own."""
        self.sampling(params, field)
        if params.HasField("structured_output"):
            raise InvalidArgument.for_field(
                f"{field}.structured_output",
                "is supported by Generate, GenerateStream and the OpenAI front only",
            )

    @staticmethod
    def structured_output(spec: sampling_pb2.StructuredOutput, field: str) -> None:
        kind = spec.WhichOneof("kind")
        if kind == "choice":
            choices = spec.choice.choices
            check_count(len(choices), field=f"{field}.choice.choices", limit=MAX_CHOICES)
            check_total_bytes(choices, field=f"{field}.choice.choices", limit=MAX_FORMAT_BYTES)
        elif kind is not None:
            check_bytes(getattr(spec, kind), field=f"{field}.{kind}", limit=MAX_FORMAT_BYTES)

    def text(self, value: str, field: str, limit: int | None = None) -> None:
        check_bytes(value, field=field, limit=self.prompt_bytes if limit is None else limit)

    def prompt(self, prompt: rollout_pb2.Prompt, field: str) -> tuple[int, int]:
        """(bytes, images) of one prompt, after checking its own limits."""
        s = self.settings
        kind = prompt.WhichOneof("kind")
        if kind == "text":
            self.text(prompt.text, field)
            return len(prompt.text.encode("utf-8", "replace")), 0
        if kind == "token_ids":
            check_count(
                len(prompt.token_ids.token_ids),
                field=f"{field}.token_ids",
                limit=self.context_length - 1,
            )
            return 4 * len(prompt.token_ids.token_ids), 0
        if kind == "messages":
            messages = prompt.messages.messages
            check_count(len(messages), field=f"{field}.messages", limit=s.max_messages)
            parts = sum(len(m.content) for m in messages)
            check_count(parts, field=f"{field}.messages.content", limit=s.max_content_parts)
            texts = [
                piece
                for m in messages
                for piece in (m.name, m.reasoning, *(p.text for p in m.content))
            ]
            check_total_bytes(texts, field=f"{field}.messages", limit=self.prompt_bytes)
            images = sum(1 for m in messages for p in m.content if p.HasField("image"))
            return sum(len(t.encode("utf-8", "replace")) for t in texts), images
        raise InvalidArgument.for_field(field, "set one of text, messages or token_ids")

    # ----- per RPC -----
    def generation_input(self, request: rollout_pb2.GenerationInput, field: str) -> int:
        """Check a Generate/GenerateStream input; returns its number of sequences."""
        s = self.settings
        check_count(
            len(request.prompts), field=f"{field}.prompts", limit=s.max_prompts_per_request,
            minimum=1,
        )  # fmt: skip
        self.sampling(request.sampling, f"{field}.sampling")
        check_id(request.model, field=f"{field}.model")
        sequences = len(request.prompts) * (request.sampling.n or 1)
        if sequences > s.max_sequences_per_request:
            raise InvalidArgument.for_field(
                f"{field}.sampling.n",
                f"{len(request.prompts)} prompts x n={request.sampling.n or 1} is {sequences} "
                f"sequences; the limit per request is {s.max_sequences_per_request}",
            )
        check_count(
            len(request.chat_template_kwargs.fields),
            field=f"{field}.chat_template_kwargs",
            limit=s.max_chat_template_kwargs,
        )
        total = images = 0
        for i, prompt in enumerate(request.prompts):
            size, pictures = self.prompt(prompt, f"{field}.prompts[{i}]")
            total, images = total + size, images + pictures
        if total > s.max_request_bytes:
            raise InvalidArgument.for_field(
                f"{field}.prompts",
                f"the prompts hold {total} bytes; the limit per request is {s.max_request_bytes}",
            )
        check_count(images, field=f"{field}.prompts.image", limit=s.max_images_per_request)
        return sequences

    def episode_spec(self, spec: rollout_pb2.EpisodeSpec, *, continuous: bool = False) -> int:
        """Check an EpisodeSpec; returns the episodes it asks for (per pass of the seeds)."""
        s = self.settings
        if not spec.env_id:
            raise InvalidArgument.for_field("spec.env_id", "is required, e.g. 'visgym/maze_2d'")
        check_id(spec.env_id, field="spec.env_id")
        check_id(spec.model, field="spec.model")
        check_enum(spec.difficulty, episode_pb2.Difficulty.DESCRIPTOR, field="spec.difficulty")
        check_enum(
            spec.settings.observation_mode,
            episode_pb2.ObservationMode.DESCRIPTOR,
            field="spec.settings.observation_mode",
        )
        check_enum(
            spec.context_strategy,
            rollout_pb2.ContextStrategy.DESCRIPTOR,
            field="spec.context_strategy",
        )
        for name in ("episodes_per_seed", "concurrency", "max_turns"):
            if getattr(spec, name) < 0:
                raise InvalidArgument.for_field(f"spec.{name}", "must be >= 0")
        if spec.settings.history_window < 0:
            raise InvalidArgument.for_field("spec.settings.history_window", "must be >= 0")
        check_count(len(spec.seeds), field="spec.seeds", limit=s.max_episodes_per_request)
        per_seed = spec.episodes_per_seed or 1
        episodes = max(len(spec.seeds), 1) * per_seed
        if episodes > s.max_episodes_per_request:
            raise InvalidArgument.for_field(
                "spec.episodes_per_seed",
                f"{max(len(spec.seeds), 1)} seeds x {per_seed} is {episodes} episodes; the "
                f"limit per request is {s.max_episodes_per_request}",
            )
        check_count(spec.max_turns, field="spec.max_turns", limit=s.max_episode_turns)
        self.text(spec.system_prompt, "spec.system_prompt")
        self.free_text_sampling(spec.sampling, "spec.sampling")
        if spec.HasField("episode_timeout"):
            self.duration(spec.episode_timeout, "spec.episode_timeout")
        return episodes if not continuous else min(episodes, s.max_episode_concurrency)

    @staticmethod
    def duration(value: duration_pb2.Duration, field: str) -> float:
        if not -999_999_999 <= value.nanos <= 999_999_999 or (
            value.seconds and value.nanos and (value.seconds > 0) != (value.nanos > 0)
        ):
            raise InvalidArgument.for_field(field, "is not a valid Duration")
        seconds = value.seconds + value.nanos / 1e9
        if not 0 < seconds <= MAX_EPISODE_TIMEOUT_S:
            raise InvalidArgument.for_field(
                field, f"must be positive and at most {MAX_EPISODE_TIMEOUT_S} s"
            )
        return seconds

    def heavy_think(self, request: rollout_pb2.HeavyThinkRequest, max_paths: int) -> int:
        """Check a HeavyThink request; returns its number of sequences (paths + reflection)."""
        check_count(request.num_paths, field="num_paths", limit=max_paths)
        self.prompt(request.prompt, "prompt")
        self.free_text_sampling(request.path_sampling, "path_sampling")
        self.free_text_sampling(request.reflection_sampling, "reflection_sampling")
        self.text(request.reflection_instruction, "reflection_instruction")
        check_id(request.model, field="model")
        return (request.num_paths or 1) + 1

    def playtest(self, request: rollout_pb2.PlaytestRequest, max_reviews: int) -> int:
        """Check a Playtest request; returns its number of sequences (reviews)."""
        self.text(request.rulebook, "rulebook")
        self.text(request.game_title, "game_title", SHORT_TEXT_BYTES)
        check_id(request.model, field="model")
        if request.HasField("custom_persona"):
            persona = request.custom_persona
            for name in ("name", "motivation", "profile", "interaction_style"):
                self.text(getattr(persona, name), f"custom_persona.{name}", SHORT_TEXT_BYTES)
            check_count(len(persona.keywords), field="custom_persona.keywords", limit=MAX_KEYWORDS)
            check_total_bytes(
                persona.keywords, field="custom_persona.keywords", limit=SHORT_TEXT_BYTES
            )
        limit = min(max_reviews, self.settings.max_n)
        check_count(request.num_reviews, field="num_reviews", limit=limit)
        self.free_text_sampling(request.sampling, "sampling")
        return request.num_reviews or 1
