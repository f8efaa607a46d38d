"""Between environments and the envfarm v1 wire types."""

from __future__ import annotations

import time

import numpy as np
from google.protobuf import struct_pb2, timestamp_pb2
from numpy.typing import NDArray

from gantry.core.codecs import image_from_array
from gantry.core.errors import InvalidArgument, echo
from gantry.envfarm.envs.base import MAX_STEPS, Difficulty, Observation, VisGymEnv
from gantry.envfarm.envs.registry import ENVIRONMENTS
from gantry.envfarm.sessions import Session
from gantry.proto.common.v1 import chat_pb2, episode_pb2, media_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2

VISGYM_PREFIX = "visgym/"

_DIFFICULTY_IN: dict[int, Difficulty] = {
    episode_pb2.DIFFICULTY_UNSPECIFIED: "easy",
    episode_pb2.DIFFICULTY_EASY: "easy",
    episode_pb2.DIFFICULTY_HARD: "hard",
}
_DIFFICULTY_OUT: dict[str, episode_pb2.Difficulty] = {
    "easy": episode_pb2.DIFFICULTY_EASY,
    "hard": episode_pb2.DIFFICULTY_HARD,
}


def wire_id(env_id: str) -> str:
    """A registry id's wire id; task-family ids ("terminal/...") are already wire ids."""
    return env_id if "/" in env_id else VISGYM_PREFIX + env_id


def resolve_env_id(value: str, field: str = "env_id") -> str:
    """Accept "visgym/maze_2d" (canonical) or "maze_2d"; return the registry id."""
    if not value:
        raise InvalidArgument.for_field(field, "is required, e.g. 'visgym/maze_2d'")
    name = value.removeprefix(VISGYM_PREFIX)
    if name not in ENVIRONMENTS:
        known = ", ".join(wire_id(i) for i in sorted(ENVIRONMENTS))
        raise InvalidArgument.for_field(field, f"unknown environment {echo(value)}; known: {known}")
    return name


def difficulty_in(value: int, field: str = "difficulty") -> Difficulty:
    if value not in _DIFFICULTY_IN:
        raise InvalidArgument.for_field(field, f"unknown difficulty {value}")
    return _DIFFICULTY_IN[value]


def difficulty_out(value: Difficulty) -> episode_pb2.Difficulty:
    return _DIFFICULTY_OUT[value]


def environment(env_type: type[VisGymEnv], strategies: tuple[str, ...]) -> envfarm_pb2.Environment:
    return envfarm_pb2.Environment(
        id=wire_id(env_type.env_id),
        kind=envfarm_pb2.ENVIRONMENT_KIND_VISUAL,
        description=env_type.description,
        instructions=env_type.prompt("easy"),
        action_grammar=env_type.action_grammar,
        action_examples=list(env_type.action_examples),
        difficulties=[
            envfarm_pb2.DifficultyLevel(
                difficulty=difficulty_out(level),
                max_steps=MAX_STEPS[level],
                description=env_type.levels.get(level, ""),
            )
            for level in ("easy", "hard")
        ],
        observation_modes=[
            episode_pb2.OBSERVATION_MODE_IMAGE,
            episode_pb2.OBSERVATION_MODE_TEXT,
            episode_pb2.OBSERVATION_MODE_IMAGE_AND_TEXT,
        ],
        supports_text_feedback=True,
        supports_goal_image=True,
        has_solver=True,
        solver_strategies=list(strategies),
        requires_dataset=False,
        finish_action="('stop',)",
        finish_action_format="('stop',) with no answer: the episode is graded on the state",
        seed_semantics=envfarm_pb2.SEED_SEMANTICS_INITIAL_STATE,
        solver_kind=envfarm_pb2.SOLVER_KIND_PLANNER,
    )


def image(pixels: NDArray[np.uint8]) -> media_pb2.Image:
    return image_from_array(pixels)


def observation(obs: Observation, mode: int) -> episode_pb2.Observation:
    """The parts of an observation the session's mode asks for (default: image)."""
    wants_text = mode in (
        episode_pb2.OBSERVATION_MODE_TEXT,
        episode_pb2.OBSERVATION_MODE_IMAGE_AND_TEXT,
    )
    wants_image = mode != episode_pb2.OBSERVATION_MODE_TEXT
    result = episode_pb2.Observation()
    if wants_text:
        result.text = obs["text"]
    if wants_image:
        result.image.CopyFrom(image(obs["image"]))
    return result


def struct(values: dict[str, object]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update({k: v for k, v in values.items() if isinstance(v, (str, int, float, bool))})
    return result


def session(s: Session, lifetime_s: float) -> envfarm_pb2.Session:
    state = (
        envfarm_pb2.SESSION_STATE_CLOSED
        if s.closed
        else envfarm_pb2.SESSION_STATE_DONE
        if s.env.done
        else envfarm_pb2.SESSION_STATE_ACTIVE
    )
    created = timestamp_pb2.Timestamp()
    created.FromNanoseconds(int(s.created * 1e9))
    expires = timestamp_pb2.Timestamp()
    expires.FromNanoseconds(int((time.time() + max(0.0, s.expires_in(lifetime_s))) * 1e9))
    return envfarm_pb2.Session(
        id=s.id,
        env_id=wire_id(s.env_id),
        difficulty=difficulty_out(s.env.difficulty),
        seed=s.seed,
        settings=s.settings,
        state=state,
        step_index=s.env.steps,
        max_steps=s.env.max_steps,
        total_reward=s.total_reward,
        create_time=created,
        expire_time=expires,
    )


def text_message(role: int, text: str) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(role=role, content=[chat_pb2.ContentPart(text=text)])  # type: ignore[arg-type]
