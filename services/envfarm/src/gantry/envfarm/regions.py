"""Frame regions: raw frames through shared memory, for clients on the server's host.

A raw frame in a reply is serialised, carried through gRPC and parsed again: for a
StepBatch of maze_2d that is half the CPU of a step, client and server together. A client
on the same host can ask for a frame region instead: envfarm creates a POSIX
shared-memory object (`/dev/shm`, mode 0600: the server's user only) under a random
name, maps it, and the client maps the same object; Step and StepBatch then write each
frame into its slot and the reply says so (`StepResult.frame_in_region`).

The server chooses every name and size: a request names a region by its id, never by a
path. Slot counts and the total size are checked against the operator's limits before
anything is created, and a region's memory is reserved when it is made (a full
`/dev/shm` refuses the region instead of failing a write later). The first bytes hold
a random nonce, so a client knows it mapped this region and not a namesake in another
mount namespace (a server in a container: it falls back to frames in the reply). A
client names a region in a step only once it has mapped it, so the server unlinks the
name at the first use: from then on the memory lives only as long as the two mappings,
and a crash of either side leaks nothing. A region is deleted on DeleteFrameRegion,
after `idle_s` unused and when the server stops; one that a call is writing into is
unmapped when that call ends.
"""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gantry.core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from gantry.core.limits import check_id
from gantry.proto.envfarm.v1 import envfarm_pb2

log = logging.getLogger("gantry.envfarm")

SHM_DIR = Path("/dev/shm")
PREFIX = "gantry-envfarm-"
HEADER_BYTES = 4096  # the nonce; slots start page-aligned after it
NONCE_BYTES = 16


def _page_aligned(n: int) -> int:
    return -(-n // mmap.PAGESIZE) * mmap.PAGESIZE


@dataclass(eq=False)
class FrameRegion:
    id: str
    path: Path
    slots: int
    slot_bytes: int
    nonce: bytes
    memory: mmap.mmap
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0  # calls writing into it now
    deleted: bool = False
    linked: bool = True  # the name still exists in SHM_DIR

    @property
    def size_bytes(self) -> int:
        return HEADER_BYTES + self.slots * self.slot_bytes

    def write(self, slot: int, pixels: NDArray[np.uint8]) -> bool:
        """Copy a frame into `slot`; False when it does not fit (it goes in the reply)."""
        if not 0 <= slot < self.slots or pixels.nbytes > self.slot_bytes or self.memory.closed:
            return False
        start = HEADER_BYTES + slot * self.slot_bytes
        try:
            self.memory[start : start + pixels.nbytes] = np.ascontiguousarray(pixels).data
        except ValueError:  # unmapped meanwhile (a cancelled call's step finishing late)
            return False
        return True

    def to_proto(self) -> envfarm_pb2.FrameRegion:
        return envfarm_pb2.FrameRegion(
            id=self.id,
            shm_name=self.path.name,
            size_bytes=self.size_bytes,
            slots=self.slots,
            slot_offset=HEADER_BYTES,
            slot_bytes=self.slot_bytes,
            nonce=self.nonce,
        )

    def unlink(self) -> None:
        if not self.linked:
            return
        self.linked = False
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # the directory went away: nothing left to free
            log.warning("frame region %s: unlink failed: %s", self.id, exc)

    def close(self) -> None:
        self.unlink()
        if self.users == 0:
            self.memory.close()


# Where one step's frame goes: a region and its slot.
FrameSlot = tuple[FrameRegion, int]


class FrameRegions:
    """The server's frame regions, within a count and a total size."""

    def __init__(
        self,
        *,
        max_regions: int,
        max_bytes: int,
        max_slots: int,
        frame_bytes: int,
        idle_s: float,
        directory: Path = SHM_DIR,
    ) -> None:
        self.max_regions = max_regions
        self.max_bytes = max_bytes
        self.max_slots = max_slots
        self.slot_bytes = _page_aligned(frame_bytes)
        self.idle_s = idle_s
        self.directory = directory
        self._regions: dict[str, FrameRegion] = {}

    def __len__(self) -> int:
        return len(self._regions)

    @property
    def bytes_in_use(self) -> int:
        return sum(r.size_bytes for r in self._regions.values())

    def create(self, slots: int) -> FrameRegion:
        if self.max_bytes == 0 or self.max_regions == 0:
            raise FailedPrecondition(
                "frame regions are turned off on this server; frames travel in the replies",
                reason="FRAME_REGIONS_DISABLED",
            )
        if not 1 <= slots <= self.max_slots:
            raise InvalidArgument.for_field("slots", f"must be between 1 and {self.max_slots}")
        size = HEADER_BYTES + slots * self.slot_bytes
        if len(self._regions) >= self.max_regions or self.bytes_in_use + size > self.max_bytes:
            raise ResourceExhausted(
                f"frame regions are limited to {self.max_regions} and {self.max_bytes} bytes "
                "in all; delete some or retry later",
                retry_after_s=1.0,
            )
        token = secrets.token_hex(16)
        path = self.directory / f"{PREFIX}{token}"
        nonce = secrets.token_bytes(NONCE_BYTES)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise FailedPrecondition(
                f"shared memory is unavailable on this server ({exc.strerror}); frames "
                "travel in the replies",
                reason="SHARED_MEMORY_UNAVAILABLE",
            ) from exc
        try:
            # Reserve the pages now: a write past a full tmpfs (a container's 64 MiB
            # /dev/shm) would kill the server with SIGBUS instead of refusing here.
            os.posix_fallocate(fd, 0, size)
            memory = mmap.mmap(fd, size)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise ResourceExhausted(
                f"could not size a frame region of {size} bytes ({exc.strerror})",
                retry_after_s=1.0,
            ) from exc
        finally:
            os.close(fd)
        memory[:NONCE_BYTES] = nonce
        region = FrameRegion(token, path, slots, self.slot_bytes, nonce, memory)
        self._regions[token] = region
        return region

    def get(self, region_id: str, field: str) -> FrameRegion:
        check_id(region_id, field=field)
        region = self._regions.get(region_id)
        if region is None:
            raise NotFound(
                f"{field}: no frame region {region_id[:64]!r} (deleted or expired?)",
                resource_type="frame_region",
                resource_name=region_id,
            )
        region.last_used = time.monotonic()
        return region

    @contextmanager
    def use(self, region_id: str, field: str) -> Iterator[FrameRegion]:
        """The region, kept mapped until the block ends (a call writing into it)."""
        region = self.get(region_id, field)
        region.unlink()  # the client has mapped it: the name is no longer needed
        region.users += 1
        try:
            yield region
        finally:
            region.users -= 1
            region.last_used = time.monotonic()
            if region.deleted and region.users == 0:
                region.memory.close()

    def delete(self, region_id: str, field: str = "region_id") -> None:
        self._drop(self.get(region_id, field))

    def _drop(self, region: FrameRegion) -> None:
        self._regions.pop(region.id, None)
        region.deleted = True
        region.close()

    def reap(self, now: float | None = None) -> list[str]:
        """Delete the regions unused for `idle_s` (none while a call writes into them)."""
        now = time.monotonic() if now is None else now
        idle = [
            r for r in self._regions.values() if r.users == 0 and now - r.last_used >= self.idle_s
        ]
        for region in idle:
            self._drop(region)
            log.info("reaped frame region %s", region.id)
        return [r.id for r in idle]

    def close_all(self) -> None:
        for region in list(self._regions.values()):
            self._drop(region)
