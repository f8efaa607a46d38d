"""Solver demonstrations: the episodes SFT data is made of.

A demonstration replays a solver's plan from a seed and records, for every turn, the
observation the agent saw, the action it took and the feedback it got. The same records
feed `ExportDemonstrations` (chat messages on the wire) and `export_sft` (JSONL + PNGs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gantry.envfarm.envs.base import Difficulty, Observation
from gantry.envfarm.envs.registry import make, solver_for

# Detours lengthen plans past the normal budget; a demonstration must still finish.
DETOUR_STEP_ALLOWANCE = 4


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


def demonstrate(
    env_id: str,
    difficulty: Difficulty,
    seed: int,
    *,
    strategy: str | None = None,
    detours: int = 0,
) -> Demonstration:
    solver = solver_for(env_id)
    probe = make(env_id, difficulty)
    budget = probe.max_steps + DETOUR_STEP_ALLOWANCE * detours
    env = make(env_id, difficulty, max_steps=budget)
    obs, _ = env.reset(seed=seed)
    chosen = strategy or solver.strategies[0]
    plan = solver.solve(env, chosen, detours=detours, seed=seed)
    demo = Demonstration(env_id, difficulty, seed, chosen, type(env).prompt(difficulty))
    for action in plan:
        next_obs, reward, terminated, truncated, info = env.step(action)
        demo.turns.append(Turn(obs, action, info["env_feedback"]))
        demo.final_reward = reward
        obs = next_obs
        if terminated or truncated:
            break
    return demo
