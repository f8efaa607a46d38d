"""The contract every VisGym environment follows, and what they share.

An environment is a `gymnasium.Env` whose action is a string (parsed safely by
`actions.parse_action`) and whose observation is `{"image": RGB uint8 array with long
side 336, "text": text rendering}`. Subclasses supply five hooks: sample an initial state
from a seeded generator, load a state, apply one action, say whether the goal is met,
and render. The base class does the rest: `stop`, reward 1.0 only for a `stop` with the
goal met, text feedback in `info["env_feedback"]`, invalid actions counted as steps,
step limits (20 easy / 30 hard), and JSON export/import of the state.
"""

from __future__ import annotations

import copy
import json
import string
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from gantry.envfarm.envs.actions import Action, ActionError, parse_action

Difficulty = Literal["easy", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "hard")
MAX_STEPS: dict[Difficulty, int] = {"easy": 20, "hard": 30}
IMAGE_LONG_SIDE = 336
Image = NDArray[np.uint8]
Observation = dict[str, Any]
JsonState = dict[str, Any]


class VisGymEnv(gym.Env[Observation, str], ABC):
    """Base class of the seventeen environments."""

    env_id: ClassVar[str]
    description: ClassVar[str]
    # Human/LLM-readable action grammar and examples, shown in prompts and ListEnvironments.
    action_grammar: ClassVar[str]
    action_examples: ClassVar[tuple[str, ...]]
    # What each difficulty means for this environment, e.g. {"easy": "9x9 maze"}.
    levels: ClassVar[dict[str, str]] = {}
    # Size of the RGB observation (height, width); the long side is 336.
    image_shape: ClassVar[tuple[int, int]] = (IMAGE_LONG_SIDE, IMAGE_LONG_SIDE)
    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        difficulty: Difficulty = "easy",
        *,
        render_mode: str | None = None,
        dataset_path: str | Path | None = None,
        max_steps: int | None = None,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
        self.difficulty: Difficulty = difficulty
        self.render_mode = render_mode
        self.dataset_path = Path(dataset_path) if dataset_path else None
        self.max_steps = max_steps or MAX_STEPS[difficulty]
        height, width = self.image_shape
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (height, width, 3), np.uint8),
                # Text renderings are printable ASCII (digits, letters, punctuation, newlines).
                "text": spaces.Text(max_length=8192, min_length=0, charset=string.printable),
            }
        )
        self.action_space = spaces.Text(max_length=512, min_length=1, charset=string.printable)
        self.steps = 0
        self.done = False
        self._initial_state: JsonState | None = None

    # ----- hooks for subclasses -----
    @abstractmethod
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        """A fresh, solvable initial state as plain JSON data, from `rng` only."""

    @abstractmethod
    def _load_state(self, state: JsonState) -> None:
        """Make `state` (from `_sample_state` or `export_state`) the current state."""

    @abstractmethod
    def _state(self) -> JsonState:
        """The current state as plain JSON data (inverse of `_load_state`)."""

    @abstractmethod
    def _apply(self, action: Action) -> str:
        """Apply a non-stop action; return feedback. Raise `ActionError` if it is invalid."""

    @abstractmethod
    def goal_reached(self) -> bool:
        """Whether issuing `stop` now earns the reward."""

    @abstractmethod
    def render_image(self) -> Image:
        """The RGB observation, shape `image_shape + (3,)`."""

    @abstractmethod
    def render_text(self) -> str:
        """A text rendering that poses the same problem (text mode)."""

    # ----- the gymnasium contract -----
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode from `seed`, or from `options["state"]` (an exported state)."""
        super().reset(seed=seed)
        options = options or {}
        state = options.get("state")
        if state is None:
            state = self._sample_state(self.np_random)
        elif isinstance(state, str):
            state = json.loads(state)
        self._start(state)
        return self._observation(), {"env_feedback": "", "step": 0}

    def _start(self, state: JsonState) -> None:
        """Begin an episode at `state` (reset without the observation)."""
        # Round-trip through JSON: the state must be pure data, and a caller's dict must
        # never alias the environment's internals.
        state = json.loads(json.dumps(state))
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"{self.env_id}: invalid state: {exc}") from exc
        self._initial_state = copy.deepcopy(state)
        self.steps = 0
        self.done = False

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        reward, terminated, truncated, info = self.transition(action)
        return self._observation(), reward, terminated, truncated, info

    def transition(self, action: str) -> tuple[float, bool, bool, dict[str, Any]]:
        """`step` without rendering the observation (planning, tests, text mode)."""
        if self._initial_state is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("the episode is over; call reset()")
        self.steps += 1
        reward, terminated, valid = 0.0, False, True
        try:
            parsed = parse_action(action)
            if parsed.name == "stop":
                terminated = True
                if self.goal_reached():
                    reward, feedback = 1.0, "Task completed."
                else:
                    feedback = "Stopped before the goal was reached."
            else:
                feedback = self._apply(parsed)
        except ActionError as exc:
            valid, feedback = False, f"Invalid action: {exc}"
        truncated = not terminated and self.steps >= self.max_steps
        if truncated:
            feedback = f"{feedback} Step limit ({self.max_steps}) reached.".strip()
        self.done = terminated or truncated
        info = {"env_feedback": feedback, "step": self.steps, "valid_action": valid}
        return reward, terminated, truncated, info

    def render(self) -> Any:
        if self.render_mode == "ansi":
            return self.render_text()
        return self.render_image()

    def _observation(self) -> Observation:
        return {"image": self.render_image(), "text": self.render_text()}

    # ----- state export/import -----
    def initial_state(self) -> JsonState:
        """The state this episode started from (reset(options={"state": ...}) replays it)."""
        if self._initial_state is None:
            raise RuntimeError("call reset() first")
        return copy.deepcopy(self._initial_state)

    def export_state(self) -> JsonState:
        """The current state, e.g. to clone the environment for planning."""
        state: JsonState = json.loads(json.dumps(self._state()))
        return state

    def clone(self, state: JsonState | None = None) -> VisGymEnv:
        """An independent copy at the current state, or at `state` (steps restart at 0)."""
        twin = type(self)(self.difficulty, dataset_path=self.dataset_path, max_steps=self.max_steps)
        # No observation: planning clones often and never looks (gymnasium's own reset
        # bookkeeping, the seeded generator, is not needed to replay a state either).
        twin._start(self.export_state() if state is None else state)
        return twin

    @classmethod
    def prompt(cls, difficulty: Difficulty = "easy") -> str:
        """The task instruction shown to an agent."""
        examples = ", ".join(cls.action_examples)
        return (
            f"{cls.description}\n\nActions: {cls.action_grammar}\nExamples: {examples}\n"
            f"Issue 'stop' when the task is done. You have at most {MAX_STEPS[difficulty]} steps."
        )


class PlanTooLong(ValueError):
    """A strategy's plan does not fit the steps left in the episode (a refusal, not a bug)."""

    def __init__(self, strategy: str, length: int, limit: int) -> None:
        super().__init__(
            f"strategy {strategy!r} needs {length} actions including 'stop' from this state, "
            f"but the step limit leaves {limit}"
        )
        self.strategy, self.length, self.limit = strategy, length, limit


@dataclass(frozen=True)
class Plan:
    """A solver's answer: actions ending in `stop`, and how many detours it begins with."""

    actions: list[str]
    strategy: str
    detours: int


class Solver(ABC):
    """Produces a full action plan, ending in `stop`, from an environment's current state.

    Every plan fits the step limit: `make_plan` asks the strategy for a plan within the
    steps left (`plan_within`, which a solver overrides where its strategy can be
    shortened), refuses one that is still too long with `PlanTooLong`, and takes only as
    many detours as leave room for the rest of the plan.
    """

    strategies: ClassVar[tuple[str, ...]]

    @abstractmethod
    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        """Actions that reach the goal from `env`'s current state, without `stop`."""

    def plan_within(self, env: VisGymEnv, strategy: str, max_moves: int) -> list[str]:
        """`plan`, shortened to at most `max_moves` actions where the strategy allows.

        The default cannot shorten; `make_plan` refuses a result that is too long.
        """
        return self.plan(env, strategy)

    @abstractmethod
    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        """One valid action that does not make the task unsolvable (used for padding)."""

    def make_plan(
        self,
        env: VisGymEnv,
        strategy: str | None = None,
        *,
        detours: int = 0,
        seed: int | None = None,
        max_actions: int | None = None,
    ) -> Plan:
        """The plan from `env`'s current state (env is not modified), ending in `stop`.

        It holds at most `max_actions` actions, `stop` included (default: the steps left
        in `env`'s episode), or raises `PlanTooLong`. With `detours` > 0 it first takes
        up to that many detour actions and then solves from where they lead: a longer,
        still correct demonstration. Detours are capped: the most of them (a prefix of
        the seeded sequence) after which the strategy's plan still fits.
        """
        strategy = strategy or self.strategies[0]
        if strategy not in self.strategies:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {self.strategies}")
        if detours < 0:
            raise ValueError("detours must be >= 0")
        limit = env.max_steps - env.steps if max_actions is None else max_actions
        work = env.clone()
        base = self.plan_within(work, strategy, limit - 1)
        if len(base) + 1 > limit:
            raise PlanTooLong(strategy, len(base) + 1, limit)
        rng = np.random.default_rng(seed)
        taken: list[str] = []
        states: list[JsonState] = []
        for _ in range(min(detours, limit - 1)):
            action = self.detour(work, rng)
            work._apply(parse_action(action))
            taken.append(action)
            states.append(work.export_state())
        # The longest prefix of detours after which the rest of the plan still fits.
        for count in range(len(taken), 0, -1):
            room = limit - 1 - count
            try:
                rest = self.plan_within(env.clone(states[count - 1]), strategy, room)
            except ValueError:
                continue  # this detour left no plan for the strategy; take fewer
            if len(rest) <= room:
                return Plan([*taken[:count], *rest, "stop"], strategy, count)
        return Plan([*base, "stop"], strategy, 0)

    def solve(
        self,
        env: VisGymEnv,
        strategy: str | None = None,
        *,
        detours: int = 0,
        seed: int | None = None,
        max_actions: int | None = None,
    ) -> list[str]:
        """`make_plan`'s actions."""
        return self.make_plan(
            env, strategy, detours=detours, seed=seed, max_actions=max_actions
        ).actions


def run_plan(env: VisGymEnv, plan: Sequence[str]) -> float:
    """Execute `plan` on `env` and return the final reward (helper for tests and exporters)."""
    reward = 0.0
    for action in plan:
        reward, terminated, truncated, _ = env.transition(action)
        if terminated or truncated:
            break
    return reward
