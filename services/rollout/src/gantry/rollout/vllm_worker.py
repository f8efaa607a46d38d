"""Runs inside each vLLM worker (`worker_extension_cls`): load new weights in place."""

from __future__ import annotations

from typing import Any

import torch


class WeightLoader:
    """Mixed into vLLM's GPU worker; `collective_rpc` calls it on every worker."""

    model_runner: Any

    def load_weights_from_tensors(self, items: list[tuple[str, torch.Tensor]]) -> int:
        device = next(self.model_runner.model.parameters()).device
        self.model_runner.model.load_weights(weights=[(n, t.to(device)) for n, t in items])
        torch.cuda.synchronize()
        return len(items)
