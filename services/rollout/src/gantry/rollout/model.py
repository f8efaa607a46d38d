"""The served model and the state that changes while it serves.

`ServedModel` holds the generator (loaded in `start()`), the optional vision-language
generator, the request limits derived from the model's context window, and the weights
bookkeeping UpdateWeights changes: run id, update time and the policy version the
generator reports. Every front (gRPC, OpenAI HTTP) and the episode runner read the
model through it, so none of them needs the whole service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from gantry.core.errors import FailedPrecondition, GantryError, InvalidArgument, Unavailable
from gantry.core.storage import StorageRoot
from gantry.core.tracing import stage
from gantry.rollout.checkpoints import PUBLISHED_FIELD, load_checkpoint, read_published
from gantry.rollout.limits import RequestLimits
from gantry.rollout.settings import RolloutSettings

if TYPE_CHECKING:
    import torch

    from gantry.rollout.generator import Generator
    from gantry.rollout.vlm import VlmGenerator

NOT_READY_RETRY_S = 2.0
log = logging.getLogger("gantry.rollout")


class ServedModel:
    def __init__(self, settings: RolloutSettings, checkpoints: StorageRoot) -> None:
        self.settings = settings
        self.checkpoints = checkpoints
        self.name = settings.model_name or settings.model_path
        self.limits = RequestLimits(settings, context_length=2)  # set from the model by load()
        self.max_weights_bytes = settings.max_weights_bytes or 0  # default set by load()
        self.run_id = ""
        self.weights_time: float | None = None
        self.vlm: VlmGenerator | None = None
        self._generator: Generator | None = None

    @property
    def loaded(self) -> Generator | None:
        """The generator, or None before the model has loaded."""
        return self._generator

    @property
    def generator(self) -> Generator:
        if self._generator is None:  # the call gates refuse calls before this; be safe
            raise Unavailable(
                "the model is still loading; retry shortly",
                retry_after_s=NOT_READY_RETRY_S,
                reason="NOT_READY",
            )
        return self._generator

    def load(self, generator: Generator) -> None:
        self._generator = generator
        self.limits = RequestLimits(self.settings, context_length=generator.context_length)
        self.max_weights_bytes = self.settings.max_weights_bytes or generator.max_weights_bytes

    def attach_vlm(self, vlm: VlmGenerator) -> None:
        """Serve image episodes with `vlm`; updates may now be as large as it is."""
        self.vlm = vlm
        if not self.settings.max_weights_bytes:
            self.max_weights_bytes = max(self.max_weights_bytes, vlm.max_weights_bytes)

    def names(self) -> tuple[str, ...]:
        """The names a request may use for this model: its served name and its path."""
        return tuple(dict.fromkeys((self.name, self.settings.model_path)))

    def read_checkpoint(self, uri: str) -> dict[str, torch.Tensor]:
        """The tensors of a checkpoint inside the checkpoints root (blocking)."""
        return load_checkpoint(self.checkpoints, uri, max_bytes=self.max_weights_bytes)

    async def update_weights(
        self, tensors: Mapping[str, torch.Tensor], *, run_id: str, field: str, version: int = 0
    ) -> int:
        """Swap the weights in; returns the new policy version, max(current + 1, `version`).

        The update goes to the text policy, or to the VLM when every tensor names one of
        the VLM's parameters (a VLM trained by the trainer publishes its own names).
        `field` names the source.
        """
        with stage("rollout.update_weights", run_id=run_id, tensors=len(tensors)) as span:
            try:
                if self.vlm is not None and self.vlm.owns(tensors):
                    span.set_attribute("policy", "vlm")
                    version = await self.vlm.update_weights(tensors, version)
                else:
                    version = await self.generator.update_weights(
                        tensors, self.settings.weight_update_mode, version
                    )
            except (KeyError, ValueError) as exc:
                raise InvalidArgument.for_field(field, str(exc).strip("'\"")) from exc
            except RuntimeError as exc:
                raise FailedPrecondition(str(exc)) from exc
            span.set_attribute("version", version)
        self.run_id, self.weights_time = run_id or self.run_id, time.time()
        return version

    async def catch_up(self, run: Callable[..., Awaitable[Any]]) -> int:
        """At start: serve the trainer's latest published weights when they are newer than
        the base (a replica that was down, or not yet created, during a publish). Returns
        the version served. A missing or unreadable record leaves the base weights, logged.
        """
        uri = self.settings.published_weights
        if not uri:
            return 0
        try:
            found = await run(read_published, self.checkpoints, uri)
            if found is None or found.policy_version <= self.generator.policy_version:
                return 0
            tensors = await run(self.read_checkpoint, found.uri)
            version = await self.update_weights(
                tensors, run_id=found.run_id, field=PUBLISHED_FIELD, version=found.policy_version
            )
        except GantryError as exc:
            log.error("not catching up from the published weights at %s: %s", uri, exc.message)
            return 0
        log.info(
            "caught up to published policy version %d (run %s, checkpoint %s)",
            version,
            found.run_id,
            found.checkpoint_id,
        )
        return version

    async def close(self) -> None:
        if self._generator is not None:
            await self._generator.close()
        if self.vlm is not None:
            await self.vlm.close()
