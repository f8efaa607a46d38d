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
        return self._observation(), {"env_feedback": "", "step": 0}

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

    def clone(self) -> VisGymEnv:
        """An independent copy at the current state (steps restart at 0)."""
        twin = type(self)(self.difficulty, dataset_path=self.dataset_path, max_steps=self.max_steps)
        twin.reset(options={"state": self.export_state()})
        return twin

    @classmethod
    def prompt(cls, difficulty: Difficulty = "easy") -> str:
        """The task instruction shown to an agent."""
        examples = ", ".join(cls.action_examples)
        return (
            f"{cls.description}\n\nActions: {cls.action_grammar}\nExamples: {examples}\n"
            f"Issue 'stop' when the task is done. You have at most {MAX_STEPS[difficulty]} steps."
        )


class Solver(ABC):
    """Produces a full action plan, ending in `stop`, from an environment's current state."""

    strategies: ClassVar[tuple[str, ...]]

    @abstractmethod
    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        """Actions that reach the goal from `env`'s current state, without `stop`."""

    @abstractmethod
    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        """One valid action that does not make the task unsolvable (used for padding)."""

    def solve(
        self,
        env: VisGymEnv,
        strategy: str | None = None,
        *,
        detours: int = 0,
        seed: int | None = None,
    ) -> list[str]:
        """The plan from `env`'s current state (env is not modified), ending in `stop`.

        With `detours` > 0, the plan first takes that many detour actions and then
        solves from where they lead: a longer, still correct demonstration.
        """
        strategy = strategy or self.strategies[0]
        if strategy not in self.strategies:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {self.strategies}")
        if detours < 0:
            raise ValueError("detours must be >= 0")
        work = env.clone()
        rng = np.random.default_rng(seed)
        actions: list[str] = []
        for _ in range(detours):
            action = self.detour(work, rng)
            work._apply(parse_action(action))
            actions.append(action)
        actions += self.plan(work, strategy)
        return [*actions, "stop"]


def run_plan(env: VisGymEnv, plan: Sequence[str]) -> float:
    """Execute `plan` on `env` and return the final reward (helper for tests and exporters)."""
    reward = 0.0
    for action in plan:
        reward, terminated, truncated, _ = env.transition(action)
        if terminated or truncated:
            break
    return reward
