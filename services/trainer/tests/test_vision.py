"""GRPO on a vision-language policy: image turns become pixel_values for the forward, the
gradient reaches the vision side, and turns whose images cannot be rebuilt are left out."""

from __future__ import annotations

import numpy as np
import torch

from gantry.core.codecs import image_from_array
from gantry.models.tiny import tiny_model_dir
from gantry.proto.common.v1 import chat_pb2, episode_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import grpo
from gantry.trainer.training import Trainer


def image_trajectory(
    trainer: Trainer, seed: int, reward: float, group: str, *, extra_image: bool = False
) -> trajectory_pb2.Trajectory:
    slots = trainer.image_slots
    assert slots is not None
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
    images = 2 if extra_image else 1  # two: a goal image the trajectory does not carry
    prompt = [11, 12, *([slots.token_id] * slots.per_image * images), 13, 14]
    completion = [int(t) for t in rng.integers(20, 200, 5)]
    turn = trajectory_pb2.Turn(
        index=0,
        observation=episode_pb2.Observation(image=image_from_array(pixels)),
        prompt_token_ids=prompt,
        completion=chat_pb2.TokenSequence(token_ids=completion, logprobs=[-5.0] * 5),
    )
    return trajectory_pb2.Trajectory(
        id=f"t{seed}", group_id=group, final_reward=reward, turns=[turn]
    )


def test_grpo_step_trains_the_vlm_on_its_images() -> None:
    config = trainer_pb2.RunConfig(
        base_model=str(tiny_model_dir("vlm")), max_steps=1, batch_size=4, micro_batch_size=2
    )
    config.grpo.group_size = 4
    config.optimizer.learning_rate = 1e-2
    trainer = Trainer(config, seed=0)
    assert trainer.image_slots is not None and trainer.pixels is not None
    batch = [image_trajectory(trainer, i, float(i % 2), "g") for i in range(4)]
    skipped = image_trajectory(trainer, 9, 1.0, "g", extra_image=True)
    items = grpo.sequences([*batch, skipped], slots=trainer.image_slots)
    assert len(items) == 4 and all(len(item.images) == 1 for item in items)
    collated = grpo.collate(items[:2], trainer.pad_id, trainer.pixels)
    assert collated.pixel_values.shape[0] == 2  # one image per row, in row order

    vision = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "vision" in n}
    assert vision
    metrics = trainer.grpo_step(batch)
    assert np.isfinite(metrics.loss) and metrics.loss != 0.0
    moved = [
        n
        for n, p in trainer.model.named_parameters()
        if n in vision and not torch.equal(p.detach(), vision[n])
    ]
    assert moved  # the gradient flowed through the image features into the vision tower
