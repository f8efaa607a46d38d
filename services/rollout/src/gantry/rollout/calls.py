"""Small asyncio helpers shared by the RPCs: all-or-nothing gathers and the SIGTERM drain."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from gantry.core.errors import Unavailable

T = TypeVar("T")


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Like asyncio.gather, but the first failure (or a cancellation) cancels the rest, so
    no generation outlives the call that asked for it."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def drained(retry_after_s: float, what: str) -> Unavailable:
    """The status a long call ends with when the server drains (SIGTERM)."""
    return Unavailable(
        f"the server is shutting down; {what} Retry: another replica will answer.",
        retry_after_s=retry_after_s,
        reason="DRAINING",
    )


async def cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
