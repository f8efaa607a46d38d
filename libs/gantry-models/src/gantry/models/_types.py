"""Static types for loaded models.

transformers 5 keeps `generate` on `GenerationMixin`, which every `*ForCausalLM` and
`*ForConditionalGeneration` class mixes in but `PreTrainedModel` does not. This alias
lets type checkers see both; at runtime it is just `PreTrainedModel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import PreTrainedModel

if TYPE_CHECKING:
    from transformers import GenerationMixin

    class GenerativeModel(PreTrainedModel, GenerationMixin):  # type: ignore[misc,no-untyped-call]
        """A pretrained model that can ``generate``."""

else:
    GenerativeModel = PreTrainedModel

__all__ = ["GenerativeModel"]
