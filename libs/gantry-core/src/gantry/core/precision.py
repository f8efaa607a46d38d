"""Precision recipes on the wire: `gantry.common.v1.Precision` <-> a recipe name.

Recipe names are gantry-kernels' ("bf16", "fp8-naive", "fp8-jet"). The message only says
BF16 or FP8 (E4M3, 128x128 weight blocks, 1x128 activation groups); FP8 means the unified
flow, fp8-jet, unless a caller names fp8-naive explicitly (a run's extra.precision_recipe).
"""

from __future__ import annotations

from gantry.proto.common.v1 import precision_pb2, tensor_pb2

RECIPES = ("bf16", "fp8-naive", "fp8-jet")


def precision_message(recipe: str) -> precision_pb2.Precision:
    """The wire form of a recipe (both FP8 recipes share the same block/group layout)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown precision recipe {recipe!r}; choose from {RECIPES}")
    if recipe == "bf16":
        return precision_pb2.Precision(mode=precision_pb2.PRECISION_MODE_BF16)
    return precision_pb2.Precision(
        mode=precision_pb2.PRECISION_MODE_FP8,
        fp8=precision_pb2.Fp8Recipe(
            format=tensor_pb2.DTYPE_FLOAT8_E4M3FN,
            weight_block_rows=128,
            weight_block_cols=128,
            activation_group_size=128,
        ),
    )


def recipe_name(precision: precision_pb2.Precision, override: str = "") -> str:
    """The recipe a message asks for; `override` (e.g. "fp8-naive") wins when given."""
    if override:
        return override
    if precision.mode == precision_pb2.PRECISION_MODE_FP8:
        return "fp8-jet"
    return "bf16"
