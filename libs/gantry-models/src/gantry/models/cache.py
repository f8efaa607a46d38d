"""Build a model directory once per machine and reuse it.

A cache entry is complete by construction: it is built in a temporary sibling directory,
a manifest of its files and sizes is written last, and the directory is renamed into
place (an atomic step on one filesystem). A killed build leaves only a ``.tmp-*``
directory, never an entry; an entry whose files no longer match its manifest (truncated,
deleted, or written by hand) is moved aside and rebuilt. Builders run under a per-entry
file lock, so processes starting together (``gantry up``) convert a model once, not once
each; if another process still renames its build into place first, the first rename wins.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CACHE_ENV = "GANTRY_MODELS_CACHE"
DEFAULT_CACHE = Path("~/.cache/gantry/tiny-models")
MANIFEST = "gantry-cache.json"
LOCKS_DIR = ".locks"

# Staging directories older than this belong to builds that were killed (a real build
# takes about a minute at most), so they are safe to delete.
STALE_STAGING_S = 3600.0


def cache_root() -> Path:
    """``$GANTRY_MODELS_CACHE``, else ``~/.cache/gantry/tiny-models``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CACHE.expanduser()


def cached_dir(key: str, build: Callable[[Path], object]) -> Path:
    """Return ``<cache root>/<key>``, running ``build(out_dir)`` first if it is absent or broken.

    ``build`` writes a model into the empty directory ``out_dir`` (which does not exist yet).
    """
    root = cache_root()
    target = root / key
    if is_complete(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, key):
        if is_complete(target):  # built by the process that held the lock before us
            return target
        _sweep_stale_staging(root, key)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            if target.exists():  # broken: move it aside in one step, delete it below
                os.rename(target, staging / "broken")
            build(staging / "model")
            write_manifest(staging / "model")
            try:
                os.rename(staging / "model", target)
            except OSError:
                # Another process (not using the lock) renamed its build first; keep theirs.
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def write_manifest(directory: Path) -> None:
    """Record every file's size, so a later reader can tell the entry is whole."""
    sizes = {
        str(path.relative_to(directory)): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
    (directory / MANIFEST).write_text(json.dumps({"files": sizes}, indent=1), encoding="utf-8")


def is_complete(directory: Path) -> bool:
    """``directory`` holds a manifest and every file it lists, at the listed size."""
    try:
        sizes = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["files"]
        return bool(sizes) and all(
            (directory / name).stat().st_size == size for name, size in sizes.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextlib.contextmanager
def _locked(root: Path, key: str) -> Iterator[None]:
    # Lock files are never deleted: unlinking one while another process waits on it would
    # let a third process lock a new file and build alongside the waiter.
    locks = root / LOCKS_DIR
    locks.mkdir(exist_ok=True)
    with open(locks / key, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released on close, or when the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_stale_staging(root: Path, key: str) -> None:
    cutoff = time.time() - STALE_STAGING_S
    for leftover in root.glob(f".tmp-{key}-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue  # another process removed it first
