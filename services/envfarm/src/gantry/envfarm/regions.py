"""Frame regions: raw frames through shared memory, for clients on the server's host.

A raw frame in a reply is serialised, carried through gRPC and parsed again: for a
StepBatch of maze_2d that is half the CPU of a step, client and server together. A client
on the same host can ask for a frame region instead: envfarm makes an anonymous
shared-memory file (`memfd_create`: it has no name anywhere), maps it, and tells the
client where to open it, `/proc/<server pid>/fd/<fd>` (the kernel lets only the server's
user, or root, open it there); the client maps it too. Step, Reset and StepBatch then
write each frame into its slot and the reply says so (`frame_in_region`).

The server makes every region and picks every size: a request names a region by its id,
never by a path. Slot counts and the total size are checked against the operator's limits
before anything is made, and a region's memory is reserved when it is made (a full
memory cgroup refuses the region instead of failing a write later). The first bytes hold
a random nonce, so a client knows it mapped this region and not another process's file (a
server in another container or pid namespace: it falls back to frames in the reply). A
client names a region in a request only once it has mapped it, so the server closes the
file at the first use: from then on the memory lives only as long as the two mappings, and
nothing outlives both processes, however they end. A region is deleted on
DeleteFrameRegion, after `idle_s` unused and when the server stops; one that a call is
writing into is unmapped when that call ends.
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

import numpy as np
from numpy.typing import NDArray

from gantry.core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from gantry.core.limits import check_id
from gantry.proto.envfarm.v1 import envfarm_pb2

log = logging.getLogger("gantry.envfarm")

HEADER_BYTES = 4096  # the nonce; slots start page-aligned after it
NONCE_BYTES = 16


def _page_aligned(n: int) -> int:
    return -(-n // mmap.PAGESIZE) * mmap.PAGESIZE


@dataclass(eq=False)
class FrameRegion:
    id: str
    fd: int | None  # open until the client has mapped the file (its first use)
    slots: int
    slot_bytes: int
    nonce: bytes
    memory: mmap.mmap
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0  # calls writing into it now
    deleted: bool = False

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
            path=f"/proc/{os.getpid()}/fd/{self.fd}" if self.fd is not None else "",
            size_bytes=self.size_bytes,
            slots=self.slots,
            slot_offset=HEADER_BYTES,
            slot_bytes=self.slot_bytes,
            nonce=self.nonce,
        )

    def close_file(self) -> None:
        """Close the file (the mappings keep the memory): no one else can open it now."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def close(self) -> None:
        self.close_file()
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
    ) -> None:
        self.max_regions = max_regions
        self.max_bytes = max_bytes
        self.max_slots = max_slots
        self.slot_bytes = _page_aligned(frame_bytes)
        self.idle_s = idle_s
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
        nonce = secrets.token_bytes(NONCE_BYTES)
        try:
            fd = os.memfd_create(f"gantry-frames-{token[:8]}", os.MFD_CLOEXEC)
        except (AttributeError, OSError) as exc:  # not Linux, or no file descriptors left
            raise FailedPrecondition(
                f"shared memory is unavailable on this server ({exc}); frames travel in "
                "the replies",
                reason="SHARED_MEMORY_UNAVAILABLE",
            ) from exc
        try:
            # Reserve the pages now: a write the memory cannot back would kill the server
            # with SIGBUS instead of refusing here.
            os.posix_fallocate(fd, 0, size)
            memory = mmap.mmap(fd, size)
        except OSError as exc:
            os.close(fd)
            raise ResourceExhausted(
                f"could not reserve a frame region of {size} bytes ({exc.strerror})",
                retry_after_s=1.0,
            ) from exc
        memory[:NONCE_BYTES] = nonce
        region = FrameRegion(token, fd, slots, self.slot_bytes, nonce, memory)
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
        region.close_file()  # the client has mapped it: no one else needs to open it
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
