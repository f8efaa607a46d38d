"""Model names accepted wherever Gantry takes a model path: the one resolver.

- ``tiny``: the tiny random model of the requested kind (tests, development);
- a packaged real model (``smollm2-135m-instruct``), converted once into the model cache;
- anything else is returned unchanged: a checkpoint directory, checked when it is loaded.

Importing this module is cheap (no torch); resolving a name may build or convert a model.
"""

from __future__ import annotations

from typing import Literal

from gantry.models.errors import ModelLoadError
from gantry.models.packaged import PACKAGED_MODELS, SMOLLM2_135M_INSTRUCT

__all__ = ["MODEL_NAMES", "SMOLLM2", "TINY_MODEL", "is_model_name", "resolve_model_path"]

TINY_MODEL = "tiny"
SMOLLM2 = SMOLLM2_135M_INSTRUCT.name
MODEL_NAMES: tuple[str, ...] = (TINY_MODEL, *PACKAGED_MODELS)

ModelKind = Literal["causal_lm", "vlm"]


def is_model_name(value: str) -> bool:
    return value in MODEL_NAMES


def resolve_model_path(value: str, kind: ModelKind = "causal_lm") -> str:
    """The checkpoint directory ``value`` names (building it if needed), else ``value``."""
    if value == TINY_MODEL:
        from gantry.models.tiny import tiny_model_dir

        return str(tiny_model_dir(kind))
    if value in PACKAGED_MODELS:
        if kind != "causal_lm":
            raise ModelLoadError(value, f"a packaged causal LM cannot serve as a {kind}")
        from gantry.models.packaged import packaged_model_dir

        return str(packaged_model_dir(value))
    return value
