"""Frame regions on their own: limits before anything is made, the file a client opens,
expiry, and a region deleted while a call writes into it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gantry.core import errors
from gantry.envfarm.regions import HEADER_BYTES, FrameRegions

FRAME = 64 * 64 * 3


def _regions(**limits: int) -> FrameRegions:
    settings = {"max_regions": 2, "max_bytes": 1 << 20, "max_slots": 8, **limits}
    return FrameRegions(frame_bytes=FRAME, idle_s=10.0, **settings)


def test_limits_are_checked_before_anything_is_created() -> None:
    regions = _regions()
    for slots in (0, 9):
        with pytest.raises(errors.InvalidArgument) as bad:
            regions.create(slots)
        assert bad.value.violations[0].field == "slots"
    big = _regions(max_slots=1000)
    with pytest.raises(errors.ResourceExhausted):
        big.create(1000)  # 1000 slots of 12 KiB: past 1 MiB in all
    regions.create(1)
    regions.create(1)
    with pytest.raises(errors.ResourceExhausted):
        regions.create(1)  # a third region
    assert len(regions) == 2
    with pytest.raises(errors.FailedPrecondition):
        _regions(max_bytes=0).create(1)
    regions.close_all()


def test_a_region_holds_frames_under_a_name_the_server_picked() -> None:
    regions = _regions()
    region = regions.create(2)
    path = region.to_proto().path
    assert path == f"/proc/{os.getpid()}/fd/{region.fd}"
    with open(path, "rb") as file:  # what a client on this host opens
        assert file.read(len(region.nonce)) == region.nonce
        assert os.fstat(file.fileno()).st_size == region.size_bytes
    frame = np.arange(FRAME, dtype=np.uint8).reshape(64, 64, 3)
    with regions.use(region.id, "frame_region") as used:
        assert used.write(1, frame) and not used.write(2, frame)  # no slot 2
        assert not used.write(0, np.zeros((65, 64, 3), np.uint8))  # larger than a slot
    assert region.fd is None and region.to_proto().path == ""  # closed at first use
    start = HEADER_BYTES + region.slot_bytes
    # The server's own mapping still holds the frame.
    got = np.frombuffer(region.memory, np.uint8, FRAME, start).reshape(64, 64, 3)
    np.testing.assert_array_equal(got, frame)
    assert bytes(region.memory[: len(region.nonce)]) == region.nonce
    with pytest.raises(errors.NotFound):
        regions.get("unknown", "frame_region")


def test_idle_regions_expire_but_not_while_a_call_writes() -> None:
    regions = _regions()
    idle, busy = regions.create(1), regions.create(1)
    with regions.use(busy.id, "frame_region"):
        later = busy.last_used + 60
        assert regions.reap(later) == [idle.id]
        regions.delete(busy.id)  # deleted mid-call: unmapped when the call ends
        assert not busy.memory.closed
    assert busy.memory.closed and idle.memory.closed
    assert len(regions) == 0 and idle.fd is None
    with pytest.raises(errors.NotFound):
        regions.delete(busy.id)
