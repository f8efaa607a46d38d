"""The FP8 precision flow in one import: ``from gantry.kernels import fp8``.

Re-exports the public API of :mod:`~gantry.kernels.fp8_quant`,
:mod:`~gantry.kernels.fp8_gemm`, :mod:`~gantry.kernels.fp8_linear` and
:mod:`~gantry.kernels.recipes`.
"""

from __future__ import annotations

from gantry.kernels.fp8_gemm import fp8_gemm, fp8_gemm_ref
from gantry.kernels.fp8_linear import (
    DEFAULT_TARGETS,
    FP8Config,
    FP8Linear,
    FP8LinearFunction,
    convert_linear_layers,
    fp8_linear,
    fp8_linear_ref,
    set_fp8_enabled,
)
from gantry.kernels.fp8_quant import (
    Quantized,
    dequantize,
    quantize_activation,
    quantize_activation_ref,
    quantize_weight,
    quantize_weight_ref,
    quantize_weight_with_transpose,
)
from gantry.kernels.recipes import RECIPES, PrecisionRecipe, get_recipe

__all__ = [
    "DEFAULT_TARGETS",
    "RECIPES",
    "FP8Config",
    "FP8Linear",
    "FP8LinearFunction",
    "PrecisionRecipe",
    "Quantized",
    "convert_linear_layers",
    "dequantize",
    "fp8_gemm",
    "fp8_gemm_ref",
    "fp8_linear",
    "fp8_linear_ref",
    "get_recipe",
    "quantize_activation",
    "quantize_activation_ref",
    "quantize_weight",
    "quantize_weight_ref",
    "quantize_weight_with_transpose",
    "set_fp8_enabled",
]
