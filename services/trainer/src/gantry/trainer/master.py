"""BF16 working weights with float32 master copies held by the optimiser.

The model's parameters are what the forward computes with, and what a publish sends to
rollout: BF16 for a BF16 checkpoint (or with ``train_dtype=bfloat16``), the dtype rollout
serves, so trainer and rollout run the same weights in the same dtype. Small updates
would be lost if AdamW stepped BF16 numbers (an update below half a BF16 ulp of the
weight rounds away), so :class:`MasterAdamW` keeps a float32 copy of every parameter in
its state (``"master"``, next to ``exp_avg``/``exp_avg_sq``). Each backward's BF16
gradient is added to a float32 gradient on the master as soon as it is computed (a
post-accumulate hook, so micro-batches sum in float32); the step updates the master with
it and rounds the master back into the parameter.

The masters live in the optimiser's state dict, so checkpoints (DCP shards, any number of
ranks) save and restore them with the moments and resume is exact; under FSDP2 each
master is a float32 shard (a DTensor) of its BF16 parameter's shard. The update is
AdamW's (decoupled weight decay, bias-corrected moments), element for element the same
arithmetic as ``torch.optim.AdamW``'s single-tensor path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

# config.extra.train_dtype: "auto" (the default) keeps the checkpoint's dtype, as rollout's
# own `dtype=auto` does, so both sides hold the same weights (float16 becomes bfloat16).
TRAIN_DTYPES = ("auto", "bfloat16", "float32")
DEFAULT_TRAIN_DTYPE = "auto"
# config.extra.attn_implementation: "" keeps the checkpoint's (transformers picks SDPA).
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


class MasterAdamW(torch.optim.AdamW):
    """AdamW over float32 master copies of low-precision parameters (see module doc)."""

    def __init__(self, params: Iterable[nn.Parameter], **kwargs: Any) -> None:
        for key in ("amsgrad", "maximize", "foreach", "fused", "capturable", "differentiable"):
            if kwargs.get(key):
                raise ValueError(f"MasterAdamW does not support {key}=True")
        super().__init__(params, **kwargs)
        # Each backward's gradient joins a float32 sum at once (micro-batches accumulate in
        # float32, not BF16). FSDP2 calls these hooks on the sharded parameters too.
        for group in self.param_groups:
            for p in group["params"]:
                p.register_post_accumulate_grad_hook(self._accumulate)

    def _accumulate(self, p: torch.Tensor) -> None:
        if p.grad is None:
            return
        master = self._master_state(p)["master"]
        grad = p.grad.to(torch.float32)
        master.grad = grad if master.grad is None else master.grad.add_(grad)
        p.grad = None

    def _master_state(self, p: torch.Tensor) -> dict[str, Any]:
        """The parameter's state, created (float32 copy, zero moments) on first use."""
        state: dict[str, Any] = self.state[p]
        if "master" not in state:
            # A checkpoint from float32 weights has moments but no master: start from p.
            state["master"] = p.detach().to(torch.float32, copy=True)
        master = state["master"]
        if "step" not in state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(master)
            state["exp_avg_sq"] = torch.zeros_like(master)
        return state

    def masters(self) -> Iterator[torch.Tensor]:
        """The float32 masters that hold a gradient (``master.grad``, float32, summed over
        the step's backward passes): what clipping and the step use. A gradient set on a
        parameter without a backward is moved to its master first."""
        self._move_gradients()
        for group in self.param_groups:
            for p in group["params"]:
                master = self.state.get(p, {}).get("master")
                if master is not None and master.grad is not None:
                    yield master

    def _move_gradients(self) -> None:
        """Gradients still on parameters (set without a backward) join their masters."""
        for group in self.param_groups:
            for p in group["params"]:
                self._accumulate(p)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._move_gradients()  # when no clipping moved them before the step
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                state = self.state.get(p, {})
                master = state.get("master")
                if master is None or master.grad is None:
                    continue
                grad = master.grad
                state["step"] += 1
                step = float(state["step"])
                master.mul_(1 - lr * wd)
                state["exp_avg"].lerp_(grad, 1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
                master.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1**step))
                master.grad = None
                p.copy_(master)  # round to the working dtype: what the next forward uses
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for state in self.state.values():
            master = state.get("master")
            if master is not None:
                master.grad = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As AdamW's, except that the masters and moments stay float32 (AdamW's own load
        casts every state tensor to its parameter's dtype: the masters would become BF16)."""
        super().load_state_dict(state_dict)
        saved = state_dict["state"]
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(ids, params, strict=True):
            for key, value in saved.get(i, {}).items():
                if key != "step" and isinstance(value, torch.Tensor):
                    self.state[p][key] = value.to(p.device, torch.float32, copy=True)

    def set_masters(self, weights: dict[nn.Parameter, torch.Tensor]) -> None:
        """Masters from float32 weights (a checkpoint written before masters existed)."""
        for p, weight in weights.items():
            self._master_state(p)["master"].copy_(weight)


def gradients_for_clipping(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[Any]:
    """The tensors whose ``.grad`` the step will use: float32 masters under
    :class:`MasterAdamW`, the parameters themselves otherwise."""
    if isinstance(optimizer, MasterAdamW):
        return list(optimizer.masters())
    return [p for p in model.parameters() if p.grad is not None]
