"""The verifier service: rubric-guided verification (DeepVerifier) over gRPC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import grpc

from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.verifier.v1 import verifier_pb2, verifier_pb2_grpc
from gantry.verifier.metrics import VerifierMetrics
from gantry.verifier.pipeline import Pipeline
from gantry.verifier.refine import Refiner
from gantry.verifier.settings import VerifierSettings

log = logging.getLogger("gantry.verifier")
SERVICE_NAME = verifier_pb2.DESCRIPTOR.services_by_name["VerifierService"].full_name


class VerifierService(Service[VerifierSettings]):
    name: ClassVar[str] = "verifier"
    settings_type: ClassVar[type[ServiceSettings]] = VerifierSettings

    def __init__(self, settings: VerifierSettings) -> None:
        super().__init__(settings)
        # Built here, not in start(): a bad taxonomy file or judge stops the server early.
        self.pipeline = Pipeline.from_settings(settings, VerifierMetrics(self.registry))
        self.refiner = Refiner(self.pipeline)

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.verifier.servicer import VerifierServicer

        servicer = VerifierServicer(self, self.pipeline, self.refiner)
        verifier_pb2_grpc.add_VerifierServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        judges = ", ".join(
            f"{name} ({spec.backend}{' ' + spec.model if spec.model else ''})"
            for name, spec in self.settings.judges.items()
        )
        log.info(
            "verifier ready: judges %s; taxonomy %d labels",
            judges,
            len(self.pipeline.taxonomy.labels),
        )

    async def stop(self) -> None:
        await self.refiner.close()
        await self.pipeline.close()

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = verifier_pb2_grpc.VerifierServiceStub(channel)
        taxonomy = stub.GetTaxonomy(verifier_pb2.GetTaxonomyRequest())
        subclasses = sum(len(c.subclasses) for c in taxonomy.classes)
        reply = stub.Verify(
            verifier_pb2.VerifyRequest(
                task="What is 2 + 2? Answer with a number.",
                answer="4",
                trajectory=[verifier_pb2.TraceStep(index=0, action="answer 4", observation="done")],
                mode=verifier_pb2.VERIFICATION_MODE_PLAIN_JUDGE,
                # Threshold 1: any score accepts, so one judge call and no feedback call.
                rubric=verifier_pb2.Rubric(accept_threshold=1),
            ),
            timeout=120,
        )
        v = reply.verification
        return (
            f"taxonomy {len(taxonomy.classes)} classes / {subclasses} subclasses; plain judge "
            f"{v.judge!r} ({v.judge_model}) scored {v.score}/4 "
            f"({verifier_pb2.Verdict.Name(v.verdict)})"
        )
