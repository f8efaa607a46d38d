"""Where the paths a client names may point: the trainer's storage roots.

| field                       | root (setting)                                           |
|-----------------------------|----------------------------------------------------------|
| `config.data.dataset_uri`   | `datasets_root` (default `<data_dir>/datasets`)          |
| `config.output_uri`         | `outputs_root` (default `<data_dir>/outputs`)            |
| `config.base_model`         | `models_root` (default `<data_dir>/models`), or a        |
|                             | checkpoint of this trainer (`<data_dir>/runs`, outputs), |
|                             | or a model name (`"tiny"`, `"smollm2-135m-instruct"`)    |

A value is a plain path or `file://` URI, relative to the root or absolute inside it;
anything that resolves elsewhere (`..`, a symlink out, another scheme) is
PERMISSION_DENIED naming the field, before the server looks at whether it exists. Values
are checked when a request arrives and again when a persisted run uses them (a run.json
written before the roots changed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gantry.core.errors import PermissionDenied
from gantry.core.storage import StorageRoot
from gantry.trainer.model import MODEL_NAMES, resolve_model_path
from gantry.trainer.settings import TrainerSettings

DATASET_FIELD = "config.data.dataset_uri"
OUTPUT_FIELD = "config.output_uri"
BASE_MODEL_FIELD = "config.base_model"


@dataclass(frozen=True)
class Roots:
    datasets: StorageRoot
    outputs: StorageRoot
    models: StorageRoot
    runs: StorageRoot  # <data_dir>/runs: every run's own directory and checkpoints

    @classmethod
    def from_settings(cls, settings: TrainerSettings) -> Roots:
        runs = settings.resolved_data_dir() / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        return cls(
            datasets=settings.storage_root("datasets", settings.datasets_root),
            outputs=settings.storage_root("outputs", settings.outputs_root),
            models=settings.storage_root("models", settings.models_root),
            runs=StorageRoot("runs", runs),
        )

    @classmethod
    def under(cls, data_dir: Path) -> Roots:
        """The default roots of a data directory (tests, tools)."""
        return cls.from_settings(TrainerSettings(data_dir=data_dir, auth_disabled=True))

    def dataset(self, uri: str, *, field: str = DATASET_FIELD) -> Path:
        """The dataset file or folder `uri` names; it must exist."""
        return self.datasets.resolve(uri, field=field, must_exist=True)

    def output(self, uri: str, *, field: str = OUTPUT_FIELD) -> Path:
        """The checkpoint folder `uri` names: a folder inside the outputs root."""
        return self.outputs.resolve(uri, field=field, allow_root=False)

    def base_model(self, value: str, *, field: str = BASE_MODEL_FIELD) -> str:
        """The model directory `value` names: a model name ("tiny", a packaged model),
        inside the models root, or one of this trainer's checkpoints."""
        if value in MODEL_NAMES:
            return resolve_model_path(value)
        denied: PermissionDenied | None = None
        for root in (self.models, self.runs, self.outputs):
            try:
                return str(root.resolve(value, field=field, allow_root=False))
            except PermissionDenied as exc:
                denied = denied or exc
        assert denied is not None
        raise PermissionDenied(
            f"{field}: must be a model name ({', '.join(MODEL_NAMES)}), a model folder "
            "inside the models root, or a checkpoint of this trainer's runs",
            reason=denied.reason,
            metadata=denied.metadata,
        )


def inside(path: Path, root: Path) -> bool:
    """`path` (symlinks resolved) is `root` or lies below it."""
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return real == base or base in real.parents
