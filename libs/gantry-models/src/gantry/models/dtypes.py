"""Turn a user-facing dtype setting into what `from_pretrained` expects."""

from __future__ import annotations

from typing import Literal

import torch

DTypeSpec = Literal["auto", "float32", "bfloat16", "float16"] | str | torch.dtype

_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def parse_dtype(spec: DTypeSpec) -> torch.dtype | Literal["auto"]:
    """``"auto"`` keeps the checkpoint's own dtype; names and torch dtypes map to torch dtypes."""
    if isinstance(spec, torch.dtype):
        if not spec.is_floating_point:
            raise ValueError(f"model dtype must be a floating point type, got {spec}")
        return spec
    key = spec.strip().lower().removeprefix("torch.")
    if key == "auto":
        return "auto"
    try:
        return _NAMES[key]
    except KeyError:
        choices = ", ".join(["auto", *sorted(_NAMES)])
        raise ValueError(f"unknown dtype {spec!r}; expected one of: {choices}") from None
