"""Gantry shared model code.

- `gantry.models.loading`: load HF checkpoints from local directories (never downloads).
- `gantry.models.tiny`: build tiny random models for tests and the local stack.

Submodules are imported on demand so `import gantry.models` stays cheap (no torch import).
"""

from gantry.models.errors import ModelLoadError

__all__ = ["ModelLoadError"]
