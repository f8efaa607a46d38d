"""gantry-trainer: SFT and GRPO training runs served over gRPC (TrainerService)."""
