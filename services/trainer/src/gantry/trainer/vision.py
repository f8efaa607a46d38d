"""Vision-language policies: GRPO on episodes whose observations were images.

A base model whose config has a `vision_config` (the tiny LLaVA-style VLM, or another
`AutoModelForImageTextToText` checkpoint) loads with its processor. Each turn of an image
episode carries the observation it was shown (`Turn.observation.image`) and its prompt
token ids with the image placeholders already expanded by rollout's processor, so the
trainer only has to turn the images back into `pixel_values`, in prompt order, and pass
them to the forward. A turn whose prompt holds a different number of images than it
carries (a goal image, which trajectories do not store), or whose completion sampled the
image placeholder token, is left out of the step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gantry.proto.common.v1 import trajectory_pb2


def is_vision_model(path: str) -> bool:
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "vision_config" in config


@dataclass(frozen=True)
class ImageSlots:
    """How a prompt holds images: the placeholder token and how many stand for one."""

    token_id: int
    per_image: int

    @classmethod
    def of(cls, model: Any) -> ImageSlots | None:
        config = getattr(model, "config", None)
        token = getattr(config, "image_token_index", None) or getattr(
            config, "image_token_id", None
        )
        per_image = getattr(config, "image_seq_length", None)
        if token is None or not per_image:
            return None
        return cls(int(token), int(per_image))

    def images_of(self, prompt: Sequence[int], turn: trajectory_pb2.Turn) -> list[Any] | None:
        """The turn's images for `prompt`, or None when they do not match its placeholders
        (or when the completion itself sampled a placeholder, which the forward would
        take for an image)."""
        if self.token_id in turn.completion.token_ids:
            return None
        placeholders = sum(1 for t in prompt if t == self.token_id)
        if not placeholders:
            return []
        if not turn.observation.HasField("image") or placeholders != self.per_image:
            return None  # a goal image (not stored) or no image: cannot rebuild the input
        return [turn.observation.image]


def pixel_values(processor: Any, images: Sequence[Any]) -> torch.Tensor:
    """Decode the turns' images and run the model's image processor (blocking)."""
    from PIL import Image as PILImage

    from gantry.core.codecs import image_to_array

    pictures = [
        PILImage.fromarray(image_to_array(image, field="observation.image")) for image in images
    ]
    out = processor.image_processor(images=pictures, return_tensors="pt")
    values: torch.Tensor = out["pixel_values"]
    return values.float()
