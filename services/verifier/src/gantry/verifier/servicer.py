"""The VerifierService RPCs over the pipeline.

Limits are checked on arrival (validation.py), before any peer call. Verify,
VerifyBatch and VerifyAndRefine pass an admission gate: `max_concurrent_verifications`
run, `max_queued_verifications` wait, more are RESOURCE_EXHAUSTED with a RetryInfo. The
caller's deadline bounds every judge, retrieval and envfarm call; a cancelled call
cancels the peer calls it is waiting on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from gantry.core.errors import (
    DeadlineExceeded,
    GantryError,
    ResourceExhausted,
    Unavailable,
    status_from_exception,
)
from gantry.core.limits import check_count
from gantry.core.server import Runtime
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.proto.verifier.v1 import verifier_pb2_grpc
from gantry.verifier.pipeline import Pipeline
from gantry.verifier.refine import Refiner


class Admission:
    """`running` calls at once, `queued` more waiting, the rest refused."""

    def __init__(self, running: int, queued: int) -> None:
        self.running, self.capacity = running, running + queued
        self._slots = asyncio.Semaphore(running)
        self._admitted = 0
        self._mean_s = 5.0  # moving average of a call's duration, for RetryInfo

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._admitted >= self.capacity:
            raise ResourceExhausted(
                f"{self._admitted} verifications are running or queued "
                f"(max_concurrent_verifications + max_queued_verifications = {self.capacity}); "
                "retry later",
                retry_after_s=round(max(1.0, self._mean_s * self._admitted / self.running), 1),
                reason="VERIFIER_QUEUE_FULL",
            )
        self._admitted += 1
        try:
            async with self._slots:
                started = time.monotonic()
                yield
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)
        finally:
            self._admitted -= 1


class VerifierServicer(verifier_pb2_grpc.VerifierServiceServicer):
    def __init__(self, runtime: Runtime, pipeline: Pipeline, refiner: Refiner) -> None:
        self.runtime, self.pipeline, self.refiner = runtime, pipeline, refiner
        settings = pipeline.settings
        self.settings = settings
        self.admission = Admission(
            settings.max_concurrent_verifications, settings.max_queued_verifications
        )

    async def Verify(self, request: pb.VerifyRequest, context: Any) -> pb.VerifyResponse:
        async with self.admission.admit():
            verification = await self.pipeline.verify(request, timeout_s=context.time_remaining())
        return pb.VerifyResponse(verification=verification)

    async def VerifyBatch(
        self, request: pb.VerifyBatchRequest, context: Any
    ) -> pb.VerifyBatchResponse:
        check_count(
            len(request.requests), field="requests", limit=self.settings.max_batch, minimum=1
        )
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        slots = asyncio.Semaphore(self.settings.batch_concurrency)

        async def one(index: int, item: pb.VerifyRequest) -> pb.VerifyBatchResult:
            result = pb.VerifyBatchResult(index=index)
            async with slots:
                try:
                    # Items that wait for a slot get what is left of the call's deadline.
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise DeadlineExceeded("the batch ran out of its deadline first")
                    verification = await self.pipeline.verify(
                        item, timeout_s=left, field=f"requests[{index}]."
                    )
                except GantryError as error:
                    result.error.CopyFrom(status_from_exception(error))
                else:
                    result.verification.CopyFrom(verification)
            return result

        async with self.admission.admit():
            results = await asyncio.gather(*(one(i, r) for i, r in enumerate(request.requests)))
        return pb.VerifyBatchResponse(results=results)

    async def VerifyAndRefine(
        self, request: pb.VerifyAndRefineRequest, context: Any
    ) -> AsyncIterator[pb.VerifyAndRefineResponse]:
        async with self.admission.admit():
            async for message in self.refiner.run(request, context.time_remaining()):
                yield message
                if not message.done and self.runtime.draining.is_set():
                    raise Unavailable(
                        "the verifier is shutting down; the rounds so far were streamed",
                        retry_after_s=5,
                        reason="DRAINING",
                    )

    async def GetTaxonomy(
        self, request: pb.GetTaxonomyRequest, context: Any
    ) -> pb.GetTaxonomyResponse:
        return self.pipeline.taxonomy.to_proto()
