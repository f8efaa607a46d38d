"""Load HF checkpoints from local directories, offline.

Every loader checks the directory first (`check_checkpoint_dir`), then calls
`from_pretrained` with ``local_files_only=True`` so a wrong path can never turn into a Hub
download, and with ``trust_remote_code=False`` unless the caller opts in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    ProcessorMixin,
)

from gantry.models._types import GenerativeModel
from gantry.models.checkpoint import PROCESSOR_FILES, TOKENIZER_FILES, check_checkpoint_dir
from gantry.models.dtypes import DTypeSpec, parse_dtype
from gantry.models.encoder import POOLINGS, Pooling, SentenceEncoder, pooling_from_checkpoint
from gantry.models.errors import ModelLoadError

__all__ = [
    "CausalLM",
    "GenerativeModel",
    "ModelLoadError",
    "SentenceEncoder",
    "VisionLanguageModel",
    "load_causal_lm",
    "load_encoder",
    "load_vlm",
]

PathLike = str | os.PathLike[str]
T = TypeVar("T")

# Errors transformers raises for a directory it cannot use (bad config, unknown
# architecture, missing optional dependency such as torchvision).
_LOAD_ERRORS = (OSError, ValueError, KeyError, ImportError)
# transformers' from_pretrained patches process-wide state while it builds a model: two
# threads loading at once leave meta tensors behind ("Cannot copy out of meta tensor")
# and later loads keep failing. One model build at a time per process.
_BUILDING = threading.Lock()


@dataclass(frozen=True, slots=True)
class CausalLM:
    """A decoder-only LM ready for inference (eval mode, on ``device``)."""

    model: GenerativeModel
    tokenizer: PreTrainedTokenizerBase
    config: PretrainedConfig
    context_length: int
    dtype: torch.dtype
    device: torch.device
    path: Path


@dataclass(frozen=True, slots=True)
class VisionLanguageModel:
    """An image-text-to-text model and the processor that prepares its inputs."""

    model: GenerativeModel
    processor: ProcessorMixin
    config: PretrainedConfig
    context_length: int
    dtype: torch.dtype
    device: torch.device
    path: Path

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        tokenizer: PreTrainedTokenizerBase = self.processor.tokenizer
        return tokenizer


def load_causal_lm(
    path: PathLike,
    *,
    dtype: DTypeSpec = "auto",
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
) -> CausalLM:
    """Load ``AutoModelForCausalLM`` + ``AutoTokenizer`` from a local checkpoint directory."""
    root = check_checkpoint_dir(path, need_any_of=[TOKENIZER_FILES])
    common = _common_kwargs(trust_remote_code)
    config = _guard(root, lambda: AutoConfig.from_pretrained(root, **common))
    tokenizer = _load_tokenizer(root, common)
    model = _load_model(root, AutoModelForCausalLM, dtype, device, common)
    return CausalLM(
        model=model,
        tokenizer=tokenizer,
        config=config,
        context_length=_context_length(root, config, tokenizer),
        dtype=model.dtype,
        device=torch.device(device),
        path=root,
    )


def load_vlm(
    path: PathLike,
    *,
    dtype: DTypeSpec = "auto",
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
) -> VisionLanguageModel:
    """Load ``AutoModelForImageTextToText`` + ``AutoProcessor`` from a local directory."""
    root = check_checkpoint_dir(path, need_any_of=[TOKENIZER_FILES, PROCESSOR_FILES])
    common = _common_kwargs(trust_remote_code)
    config = _guard(root, lambda: AutoConfig.from_pretrained(root, **common))
    processor: ProcessorMixin = _guard(
        root,
        lambda: AutoProcessor.from_pretrained(root, **common),  # type: ignore[no-untyped-call]
    )
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        raise ModelLoadError(root, f"processor {type(processor).__name__} has no tokenizer")
    model = _load_model(root, AutoModelForImageTextToText, dtype, device, common)
    return VisionLanguageModel(
        model=model,
        processor=processor,
        config=config,
        context_length=_context_length(root, config, tokenizer),
        dtype=model.dtype,
        device=torch.device(device),
        path=root,
    )


def load_encoder(
    path: PathLike,
    *,
    pooling: Pooling | None = None,
    dtype: DTypeSpec = "auto",
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
) -> SentenceEncoder:
    """Load an encoder (``AutoModel`` + tokenizer) for sentence embeddings.

    ``pooling=None`` uses what a sentence-transformers checkpoint declares in
    ``1_Pooling/config.json``, else mean pooling.
    """
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    root = check_checkpoint_dir(path, need_any_of=[TOKENIZER_FILES])
    common = _common_kwargs(trust_remote_code)
    config = _guard(root, lambda: AutoConfig.from_pretrained(root, **common))
    tokenizer = _load_tokenizer(root, common)
    model = _load_model(root, AutoModel, dtype, device, common)
    return SentenceEncoder(
        model=model,
        tokenizer=tokenizer,
        config=config,
        pooling=pooling or pooling_from_checkpoint(root) or "mean",
        max_length=_context_length(root, config, tokenizer),
        dtype=model.dtype,
        device=torch.device(device),
        path=root,
    )


def _common_kwargs(trust_remote_code: bool) -> dict[str, Any]:
    return {"local_files_only": True, "trust_remote_code": trust_remote_code}


def _guard(root: Path, load: Callable[[], T]) -> T:
    """Re-raise transformers' load failures as `ModelLoadError` naming the directory."""
    try:
        return load()
    except ModelLoadError:
        raise
    except _LOAD_ERRORS as exc:
        raise ModelLoadError(root, f"{type(exc).__name__}: {exc}") from exc


def _load_tokenizer(root: Path, common: dict[str, Any]) -> PreTrainedTokenizerBase:
    tokenizer: PreTrainedTokenizerBase = _guard(
        root, lambda: AutoTokenizer.from_pretrained(root, **common)
    )
    # Batched inference needs a pad token; many causal LMs ship without one.
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_model(
    root: Path,
    auto_cls: Any,
    dtype: DTypeSpec,
    device: str | torch.device,
    common: dict[str, Any],
) -> GenerativeModel:
    torch_dtype = parse_dtype(dtype)
    with _BUILDING:
        model: GenerativeModel = _guard(
            root, lambda: auto_cls.from_pretrained(root, dtype=torch_dtype, **common)
        )
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers' decorator typing
    model.eval()  # type: ignore[no-untyped-call]
    return model


def _context_length(
    root: Path, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase
) -> int:
    """The model's position limit; for multimodal configs, the text model's."""
    text_config = config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    # Tokenizers without a limit report a huge sentinel (int(1e30)); only trust real ones.
    limit = tokenizer.model_max_length
    if isinstance(limit, int) and 0 < limit < 1_000_000_000:
        return limit
    raise ModelLoadError(root, "cannot determine the context length from config or tokenizer")
