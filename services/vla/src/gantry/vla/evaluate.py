"""Success rate on held-out seeds, through the service (or in-process for tests).

Held-out means seeds the demonstrations did not use: training takes seeds from 0 up,
evaluation from EVAL_SEED_OFFSET up. The error bar is the 95% Wilson score interval
(gantry.core.stats.wilson_interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gantry.vla.client import EpisodeResult, VlaClient
from gantry.vla.sim import MetaWorldEnv

EVAL_SEED_OFFSET = 1000


@dataclass
class TaskScore:
    task: str
    episodes: int = 0
    successes: int = 0
    steps: list[int] = field(default_factory=list)
    chunk_latency_s: list[float] = field(default_factory=list)
    late_chunks: int = 0
    errors: int = 0

    def add(self, result: EpisodeResult) -> None:
        self.episodes += 1
        self.successes += int(result.success)
        self.steps.append(result.steps)
        self.chunk_latency_s.extend(result.chunk_latency_s)
        self.late_chunks += result.late_chunks
        self.errors += len(result.errors)

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


def total(scores: Sequence[TaskScore]) -> TaskScore:
    out = TaskScore("all")
    for score in scores:
        out.episodes += score.episodes
        out.successes += score.successes
        out.steps += score.steps
        out.chunk_latency_s += score.chunk_latency_s
        out.late_chunks += score.late_chunks
        out.errors += score.errors
    return out


def evaluate_service(
    client: VlaClient,
    tasks: Sequence[str],
    episodes_per_task: int,
    *,
    image_size: int = 0,
    render_backend: str = "auto",
    max_steps: int = 150,
    on_episode: Callable[[str, int, EpisodeResult], None] | None = None,
) -> list[TaskScore]:
    """Every task on seeds EVAL_SEED_OFFSET.. through one stream (reset per episode)."""
    info = client.info()
    size = image_size or info.cameras[0].width
    scores = []
    session = client.session()
    try:
        for task in tasks:
            score = TaskScore(task)
            for k in range(episodes_per_task):
                seed = EVAL_SEED_OFFSET + k
                env = MetaWorldEnv(
                    task,
                    seed=seed,
                    image_size=size,
                    max_steps=max_steps,
                    render_backend=render_backend,
                    instruction_index=k,
                )
                try:
                    session.reset(env.instruction)
                    result = session.run_episode(env)
                finally:
                    env.close()
                score.add(result)
                if on_episode is not None:
                    on_episode(task, seed, result)
            scores.append(score)
    finally:
        session.close()
    return scores
