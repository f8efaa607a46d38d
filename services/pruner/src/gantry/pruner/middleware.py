"""Drop-in pruning for an agent's file-read tool (SWE-Pruner's middleware).

`PruningReader` wraps any ``read(path, ...) -> str`` tool. When the agent passes a
``goal_hint`` and the output is long (more than ``min_chars``, ~500 by default), the
output goes through the pruner; otherwise it passes untouched. On any pruner error
the raw output passes, so pruning can never break the agent loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gantry.pruner.pruner import Pruner
from gantry.pruner.structure import language_for_path

log = logging.getLogger("gantry.pruner.middleware")
DEFAULT_MIN_CHARS = 500


class PruneBackend(Protocol):
    def prune(self, text: str, goal_hint: str, language: str) -> str:
        """Pruned ``text`` (raise on failure; the reader then passes the raw text)."""
        ...


class LocalBackend:
    """In-process pruning with a `Pruner`."""

    def __init__(
        self, pruner: Pruner, *, threshold: float | None = None, keep_ratio: float | None = None
    ) -> None:
        self.pruner, self.threshold, self.keep_ratio = pruner, threshold, keep_ratio

    def prune(self, text: str, goal_hint: str, language: str) -> str:
        return self.pruner.prune(
            text, goal_hint, threshold=self.threshold, keep_ratio=self.keep_ratio, language=language
        ).text


class GrpcBackend:
    """Pruning through a PrunerService (a channel from `gantry.core.client.sync_channel`)."""

    def __init__(
        self,
        channel: Any,
        *,
        threshold: float | None = None,
        token_budget: int | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        from gantry.proto.pruner.v1 import pruner_pb2_grpc

        self.stub = pruner_pb2_grpc.PrunerServiceStub(channel)
        self.threshold, self.token_budget, self.timeout_s = threshold, token_budget, timeout_s

    def prune(self, text: str, goal_hint: str, language: str) -> str:
        from gantry.proto.pruner.v1 import pruner_pb2

        request = pruner_pb2.PruneRequest(text=text, goal_hint=goal_hint, language=language)
        if self.threshold is not None:
            request.keep_threshold = self.threshold
        elif self.token_budget is not None:
            request.token_budget = self.token_budget
        reply = self.stub.Prune(request, timeout=self.timeout_s)
        pruned: str = reply.pruned_text
        return pruned


@dataclass(slots=True)
class ReaderStats:
    calls: int = 0
    pruned: int = 0
    passed: int = 0  # no hint or short output
    errors: int = 0  # pruner failed: raw output returned
    chars_in: int = 0
    chars_out: int = 0


class PruningReader:
    """Wraps ``read``; call it like ``read`` plus an optional ``goal_hint=`` keyword."""

    def __init__(
        self,
        read: Callable[..., str],
        backend: PruneBackend,
        *,
        min_chars: int = DEFAULT_MIN_CHARS,
        path_arg: str = "path",
    ) -> None:
        self.read, self.backend, self.min_chars, self.path_arg = read, backend, min_chars, path_arg
        self.stats = ReaderStats()

    def __call__(self, *args: Any, goal_hint: str | None = None, **kwargs: Any) -> str:
        output = self.read(*args, **kwargs)
        stats = self.stats
        stats.calls += 1
        stats.chars_in += len(output)
        if not goal_hint or not goal_hint.strip() or len(output) <= self.min_chars:
            stats.passed += 1
            stats.chars_out += len(output)
            return output
        path = kwargs.get(self.path_arg, args[0] if args else "")
        language = language_for_path(str(path)) if path else ""
        try:
            pruned = self.backend.prune(output, goal_hint, language)
        except Exception as exc:  # any pruner failure: the agent gets the raw output
            log.warning("pruning failed, passing the raw output: %s", exc)
            stats.errors += 1
            stats.chars_out += len(output)
            return output
        stats.pruned += 1
        stats.chars_out += len(pruned)
        return pruned
