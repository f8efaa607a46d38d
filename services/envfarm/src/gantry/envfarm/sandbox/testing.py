"""Test helpers for code that runs bubblewrap sandboxes."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def reachable_root(path: Path) -> str:
    """`path` made searchable (o+x, never readable) by the sandbox uid, up to `/`.

    bwrap resolves its bind sources as the sandbox uid, and pytest's temporary folders
    are 0700; this opens them for search only, so tests keep their files under tmp_path.
    """
    path.mkdir(parents=True, exist_ok=True)
    current = path.resolve()
    while True:
        mode = current.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(current, stat.S_IMODE(mode) | stat.S_IXOTH)
        if current.parent == current:
            return str(path.resolve())
        current = current.parent
