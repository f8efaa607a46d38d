"""Tiny random vision-language model: LLaVA wiring, SigLIP vision tower, Qwen3 text model.

LLaVA is used because its processor is just an image processor plus a tokenizer; the
Qwen-VL processors in transformers 5 also carry a video processor that requires
torchvision, which Gantry's CPU images do not ship. SigLIP's PIL image processor works
with Pillow and numpy only.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import (
    GenerationConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from gantry.models.tiny._common import eos_ids, prepare_out_dir, seeded, tiny_qwen3_config
from gantry.models.tiny.tokenizer import CHAT_TEMPLATE, IMAGE_PAD, token_id, train_bpe_tokenizer


def build_tiny_vlm(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
) -> Path:
    """Write a LLaVA-style checkpoint + processor that runs (image, text) on CPU.

    Each image becomes ``(image_size // patch_size) ** 2`` placeholder tokens
    (``<|image_pad|>``), which the processor expands from the single one in the prompt.
    """
    if image_size % patch_size:
        raise ValueError("image_size must be a multiple of patch_size")
    path = prepare_out_dir(out_dir)
    tokenizer = train_bpe_tokenizer()
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=3,
    )
    text = tiny_qwen3_config(tokenizer)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=token_id(tokenizer, IMAGE_PAD),
        # SigLIP has no CLS token: keep every patch, from the last layer.
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_seq_length=(image_size // patch_size) ** 2,
        tie_word_embeddings=True,
    )
    with seeded(seed):
        model = LlavaForConditionalGeneration(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=eos_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
    )
    processor = LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        image_token=IMAGE_PAD,
        num_additional_image_tokens=0,
        chat_template=CHAT_TEMPLATE,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
