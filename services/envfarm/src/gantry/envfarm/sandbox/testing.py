"""Test helpers for code that runs bubblewrap sandboxes."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def reachable_root(path: Path) -> str:
    """A fresh folder for sandbox workspaces that the sandbox uid can reach.

    bwrap resolves its bind sources as the sandbox uid, and pytest's temporary folders
    are private (0700, and every pytest run that starts re-applies that to the shared
    base folder), so the folder is made in the system temp folder instead, searchable
    but not listable (0711), and removed when this process exits. `path` (a test's
    tmp_path) records where it is, in `path/sandbox-root`.
    """
    real = tempfile.mkdtemp(prefix="gantry-sandboxes-")
    os.chmod(real, 0o711)
    atexit.register(shutil.rmtree, real, True)
    path.mkdir(parents=True, exist_ok=True)
    (path / "sandbox-root").write_text(real + "\n")
    return real
