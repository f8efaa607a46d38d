from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gantry.models.loading import load_causal_lm
from gantry.models.tiny import cache, cache_root, tiny_model_dir


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(root))
    return root


class FakeBuilder:
    """Records calls; writes a two-file 'model' slowly enough to expose races."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, out_dir: Path, *, seed: int) -> Path:
        with self.lock:
            self.calls.append(seed)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(f'{{"seed": {seed}}}')
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("killed mid-build")
        (out_dir / "model.safetensors").write_bytes(b"weights")
        return out_dir


def _entries(root: Path) -> list[str]:
    """Cache entries and staging directories; the lock files are not entries."""
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


def _use(monkeypatch: pytest.MonkeyPatch, builder: Any, kind: str = "causal_lm") -> None:
    monkeypatch.setitem(cache._BUILDERS, kind, builder)


def test_builds_once_then_reuses(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = FakeBuilder()
    _use(monkeypatch, builder)
    first = tiny_model_dir("causal_lm", seed=3)
    second = tiny_model_dir("causal_lm", seed=3)
    assert first == second
    assert builder.calls == [3]
    assert first.parent == cache_dir
    assert "causal_lm" in first.name and "seed3" in first.name
    assert (first / "model.safetensors").read_bytes() == b"weights"
    other = tiny_model_dir("causal_lm", seed=4)
    assert other != first
    assert builder.calls == [3, 4]


def test_failed_build_leaves_nothing(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, FakeBuilder(fail=True))
    with pytest.raises(RuntimeError, match="killed"):
        tiny_model_dir("causal_lm")
    assert _entries(cache_dir) == []
    # A later good build succeeds normally.
    good = FakeBuilder()
    _use(monkeypatch, good)
    assert (tiny_model_dir("causal_lm") / "model.safetensors").is_file()
    assert good.calls == [0]


def test_killed_build_leftovers_are_never_returned(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process killed mid-build leaves only its staging directory behind.
    builder = FakeBuilder()
    _use(monkeypatch, builder)
    key = cache.cache_key("causal_lm", 0)
    leftover = cache_dir / f".tmp-{key}-dead" / "model"
    leftover.mkdir(parents=True)
    (leftover / "config.json").write_text("{}")
    old = time.time() - cache.STALE_STAGING_S - 60
    os.utime(leftover.parent, (old, old))
    recent = cache_dir / f".tmp-{key}-still-building"
    recent.mkdir()
    path = tiny_model_dir("causal_lm")
    assert path == cache_dir / key
    assert (path / "model.safetensors").is_file()
    assert builder.calls == [0]
    # The old leftover is swept; a recent one may be a live build and is kept.
    assert not leftover.parent.exists()
    assert recent.is_dir()


def test_losing_a_race_keeps_the_winner(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cache_dir / cache.cache_key("causal_lm", 0)

    def racing_builder(out_dir: Path, *, seed: int) -> Path:
        # Another process finishes first while we are still building.
        target.mkdir(parents=True)
        (target / "winner").write_text("yes")
        out_dir.mkdir()
        (out_dir / "loser").write_text("yes")
        return out_dir

    _use(monkeypatch, racing_builder)
    assert tiny_model_dir("causal_lm") == target
    assert (target / "winner").is_file()
    assert not (target / "loser").exists()
    assert _entries(cache_dir) == [target.name]


def test_concurrent_callers_get_one_complete_dir(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builder = FakeBuilder(delay_s=0.05)
    _use(monkeypatch, builder, kind="encoder")
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(tiny_model_dir("encoder"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len(set(results)) == 1
    assert sorted(p.name for p in results[0].iterdir()) == [
        "config.json",
        "gantry-cache.json",
        "model.safetensors",
    ]
    assert _entries(cache_dir) == [results[0].name]
    assert builder.calls == [0]  # the others waited on the lock, then reused the entry


def test_unknown_kind(cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model kind"):
        tiny_model_dir("diffusion")  # type: ignore[arg-type]


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_root() == tmp_path / ".cache" / "gantry" / "tiny-models"


def test_real_build_is_cached_and_loadable(cache_dir: Path) -> None:
    path = tiny_model_dir("causal_lm", seed=0)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert tiny_model_dir("causal_lm", seed=0) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    lm = load_causal_lm(path)
    assert lm.context_length == 2048
