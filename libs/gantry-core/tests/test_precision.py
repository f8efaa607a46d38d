from __future__ import annotations

import pytest

from gantry.core.precision import RECIPES, precision_message, recipe_name
from gantry.proto.common.v1 import precision_pb2, tensor_pb2


def test_fp8_recipes_describe_the_block_and_group_layout() -> None:
    for recipe in ("fp8-naive", "fp8-jet"):
        message = precision_message(recipe)
        assert message.mode == precision_pb2.PRECISION_MODE_FP8
        assert message.fp8.format == tensor_pb2.DTYPE_FLOAT8_E4M3FN
        assert (message.fp8.weight_block_rows, message.fp8.weight_block_cols) == (128, 128)
        assert message.fp8.activation_group_size == 128
    assert precision_message("bf16").mode == precision_pb2.PRECISION_MODE_BF16


def test_round_trip_and_override() -> None:
    assert recipe_name(precision_message("bf16")) == "bf16"
    assert recipe_name(precision_message("fp8-jet")) == "fp8-jet"
    # The wire cannot tell the naive baseline apart: callers name it explicitly.
    assert recipe_name(precision_message("fp8-naive")) == "fp8-jet"
    assert recipe_name(precision_message("fp8-jet"), "fp8-naive") == "fp8-naive"
    assert recipe_name(precision_pb2.Precision()) == "bf16"
    assert set(RECIPES) == {"bf16", "fp8-naive", "fp8-jet"}


def test_unknown_recipe_is_refused() -> None:
    with pytest.raises(ValueError, match="fp4"):
        precision_message("fp4")
