"""Sentence embeddings from an encoder checkpoint (BERT-style `AutoModel` + tokenizer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

Pooling = Literal["mean", "cls"]
POOLINGS: tuple[str, ...] = get_args(Pooling)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states, ignoring padding."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """First token's state (``[CLS]``); assumes right padding, which BERT tokenizers use."""
    del attention_mask
    return hidden[:, 0]


def pooling_from_checkpoint(root: Path) -> Pooling | None:
    """Read the pooling a sentence-transformers checkpoint declares, if it declares one."""
    pooling_dir = root / "1_Pooling"
    modules = root / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
            for entry in entries:
                if str(entry.get("type", "")).endswith(".Pooling"):
                    pooling_dir = root / str(entry.get("path", "1_Pooling"))
        except (OSError, ValueError, AttributeError):
            return None
    config = pooling_dir / "config.json"
    if not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("pooling_mode_cls_token"):
        return "cls"
    if data.get("pooling_mode_mean_tokens"):
        return "mean"
    return None


@dataclass(frozen=True, slots=True)
class SentenceEncoder:
    """A loaded encoder plus the pooling that turns token states into one vector per text."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    pooling: Pooling
    max_length: int
    dtype: torch.dtype
    device: torch.device
    path: Path

    @property
    def dim(self) -> int:
        return int(self.config.hidden_size)

    def encode(
        self, texts: Sequence[str], *, normalize: bool = True, batch_size: int = 32
    ) -> torch.Tensor:
        """Embed ``texts`` into a float32 ``[len(texts), dim]`` tensor on the CPU.

        With ``normalize`` every row has unit L2 norm, so dot product is cosine similarity.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        pool = mean_pool if self.pooling == "mean" else cls_pool
        chunks: list[torch.Tensor] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                vectors = pool(hidden, batch["attention_mask"]).float()
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, p=2.0, dim=-1)
                chunks.append(vectors.cpu())
        if not chunks:
            return torch.empty(0, self.dim, dtype=torch.float32)
        return torch.cat(chunks)
