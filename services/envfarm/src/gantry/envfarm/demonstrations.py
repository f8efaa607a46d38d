"""Solver demonstrations: the episodes SFT data is made of.

A demonstration replays a solver's plan from a seed, under the level's own step limit,
and records, for every turn, the observation the agent saw, the action it took and the
feedback it got. The same records feed `ExportDemonstrations` (chat messages on the
wire) and `export_sft` (JSONL + PNGs), which keep only the successful ones unless asked
for failures too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gantry.envfarm.envs.base import Difficulty, Observation, PlanTooLong
from gantry.envfarm.envs.registry import make, solver_for

# A plan the step limit refuses is still shown, when failures are asked for, cut short
# by the limit like any other episode: the solver plans without a bound.
UNBOUNDED = 1 << 20


@dataclass
class Turn:
    observation: Observation
    action: str
    feedback: str


@dataclass
class Demonstration:
    env_id: str
    difficulty: Difficulty
    seed: int
    strategy: str
    instructions: str
    turns: list[Turn] = field(default_factory=list)
    final_reward: float = 0.0
    detours: int = 0  # detour actions the plan starts with (capped to fit the limit)

    @property
    def succeeded(self) -> bool:
        return self.final_reward == 1.0


def demonstrate(
    env_id: str,
    difficulty: Difficulty,
    seed: int,
    *,
    strategy: str | None = None,
    detours: int = 0,
    include_failures: bool = False,
) -> Demonstration:
    """Replay the solver's plan for `seed` under the level's step limit.

    Raises `PlanTooLong` when the strategy has no plan within the limit from this seed,
    unless `include_failures`: then its unbounded plan is replayed and ends truncated.
    """
    solver = solver_for(env_id)
    env = make(env_id, difficulty)
    obs, _ = env.reset(seed=seed)
    chosen = strategy or solver.strategies[0]
    try:
        plan = solver.make_plan(env, chosen, detours=detours, seed=seed)
    except PlanTooLong:
        if not include_failures:
            raise
        plan = solver.make_plan(env, chosen, detours=detours, seed=seed, max_actions=UNBOUNDED)
    demo = Demonstration(
        env_id, difficulty, seed, chosen, type(env).prompt(difficulty), detours=plan.detours
    )
    for action in plan.actions:
        next_obs, reward, terminated, truncated, info = env.step(action)
        demo.turns.append(Turn(obs, action, info["env_feedback"]))
        demo.final_reward = reward
        obs = next_obs
        if terminated or truncated:
            break
    return demo


def demonstration_or_none(
    env_id: str,
    difficulty: Difficulty,
    seed: int,
    *,
    strategy: str | None = None,
    detours: int = 0,
    include_failures: bool = False,
) -> Demonstration | None:
    """`demonstrate`, or None for one that is refused or fails (unless failures are kept)."""
    try:
        demo = demonstrate(
            env_id,
            difficulty,
            seed,
            strategy=strategy,
            detours=detours,
            include_failures=include_failures,
        )
    except PlanTooLong:
        return None
    return demo if demo.succeeded or include_failures else None
