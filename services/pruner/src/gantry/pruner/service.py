"""The pruner service: goal-hint context pruning and code-prompt checks over gRPC."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import grpc

from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.pruner.v1 import pruner_pb2, pruner_pb2_grpc
from gantry.pruner.pruner import Pruner
from gantry.pruner.scoring import CrossEncoderScorer, HeadScorer, LexicalScorer, Scorer
from gantry.pruner.settings import PrunerSettings

log = logging.getLogger("gantry.pruner")
SERVICE_NAME = pruner_pb2.DESCRIPTOR.services_by_name["PrunerService"].full_name

DEMO_CODE = '''import json


def load_config(path):
    """Read a JSON config file."""
    with open(path) as handle:
        return json.load(handle)


def retry(call, attempts=3):
    """Call `call` until it succeeds, at most `attempts` times."""
    last_error = None
    for _ in range(attempts):
        try:
            return call()
        except OSError as exc:
            last_error = exc
    raise RuntimeError("all attempts failed") from last_error


def render_table(rows):
    """Format rows as an aligned text table."""
    widths = [max(len(str(c)) for c in col) for col in zip(*rows)]
    lines = []
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return "\\n".join(lines)
'''


def load_scorer(settings: PrunerSettings) -> Scorer:
    """Build the configured scorer (blocking: loads models)."""
    if settings.scorer == "lexical":
        return LexicalScorer()
    if settings.scorer == "cross_encoder":
        if not settings.cross_encoder_path:
            raise ValueError("scorer=cross_encoder needs cross_encoder_path")
        return CrossEncoderScorer(settings.cross_encoder_path)
    return HeadScorer.load(settings.encoder_path, settings.head_path)


class PrunerService(Service[PrunerSettings]):
    name: ClassVar[str] = "pruner"
    settings_type: ClassVar[type[ServiceSettings]] = PrunerSettings

    def __init__(self, settings: PrunerSettings) -> None:
        super().__init__(settings)
        self.pruner: Pruner | None = None
        # Prune's own threads: CheckPrompt (on the shared executor) never waits for them.
        self.prune_executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_prunes, thread_name_prefix="pruner-prune"
        )

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.pruner.servicer import PrunerLimits, PrunerServicer

        servicer = PrunerServicer(
            self, self.loaded_pruner, self.prune_executor, PrunerLimits.from_settings(self.settings)
        )
        pruner_pb2_grpc.add_PrunerServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    def loaded_pruner(self) -> Pruner:
        """The pipeline `start()` built; no call reaches a servicer before (the call gate)."""
        if self.pruner is None:
            raise RuntimeError("the pruner is used before start() loaded it")
        return self.pruner

    async def start(self) -> None:
        scorer = await self.run_blocking(load_scorer, self.settings)
        self.pruner = Pruner(scorer, switch_cost=self.settings.switch_cost)
        log.info("pruner ready with scorer %s", scorer.name)

    async def stop(self) -> None:
        # Draining is set by now: a Prune still running stops at its next model batch.
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.prune_executor.shutdown(wait=True, cancel_futures=True)
        )
        self.pruner = None

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = pruner_pb2_grpc.PrunerServiceStub(channel)
        reply = stub.Prune(
            pruner_pb2.PruneRequest(
                text=DEMO_CODE,
                goal_hint="how are failed calls retried?",
                language="python",
            )
        )
        check = stub.CheckPrompt(
            pruner_pb2.CheckPromptRequest(prompt="Write a function that sorts a list.")
        )
        ranges = ", ".join(f"{r.start_line}-{r.end_line}" for r in reply.kept_ranges)
        return (
            f"Prune kept lines {ranges} of {reply.original_lines} "
            f"({reply.original_tokens}->{reply.pruned_tokens} tokens, "
            f"{reply.compression_ratio:.1f}x); CheckPrompt score {check.score:.2f} with "
            f"{len(check.findings)} findings"
        )
