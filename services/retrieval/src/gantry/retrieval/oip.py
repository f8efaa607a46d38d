"""Retrieval's encoders over KServe's Open Inference Protocol (gantry.core.inference).

Every configured dense encoder is one OIP model named by its encoder id: input `text`
(BYTES [-1], UTF-8), output `embedding` (FP32 [-1, dim]). Parameters: `input_type`
("query" or "document", the default, as in Embed: it picks the encoder's prefix) and
`normalize` (L2-normalise; false by default, as in Embed). The same limits as Embed
apply, checked by the OIP servicer on the raw sizes before anything is decoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gantry.core.errors import InvalidArgument
from gantry.core.inference import InferCall, InferenceModel, ParameterSpec, TensorSpec
from gantry.retrieval.embedders import Embedder, InputKind

if TYPE_CHECKING:
    from gantry.retrieval.service import RetrievalService

INPUT_TYPES: dict[str, InputKind] = {"query": "query", "document": "document"}


def decode_texts(values: Any, field: str) -> list[str]:
    """BYTES elements as text: each must be UTF-8."""
    texts = []
    for index, value in enumerate(values.reshape(-1)):
        try:
            texts.append(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument.for_field(f"{field}[{index}]", "is not valid UTF-8") from None
    return texts


class EmbeddingModel(InferenceModel):
    """One encoder of the retrieval service, as an OIP model."""

    def __init__(self, service: RetrievalService, encoder_id: str) -> None:
        super().__init__(encoder_id, platform="gantry-retrieval")
        self.service = service
        settings = service.settings
        self._inputs = [
            TensorSpec(
                "text",
                "BYTES",
                (-1,),
                max_elements=settings.max_batch_texts,
                max_element_bytes=settings.max_text_bytes,
                max_bytes=settings.max_request_text_bytes,
            )
        ]

    def _embedder(self) -> Embedder | None:
        backends = self.service.backends
        return None if backends is None else backends.embedders.get(self.name)

    def ready(self) -> bool:
        return self._embedder() is not None

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        embedder = self._embedder()
        dimension = embedder.dimension if embedder is not None else -1
        return [TensorSpec("embedding", "FP32", (-1, dimension))]

    @property
    def parameters(self) -> Mapping[str, ParameterSpec]:
        return {
            "input_type": ParameterSpec(str, '"query" or "document" (the default)'),
            "normalize": ParameterSpec(bool, "L2-normalise the vectors (default false)"),
        }

    async def infer(self, call: InferCall) -> Mapping[str, Any]:
        embedder = self._embedder()
        assert embedder is not None  # the servicer checks ready() first
        kind = INPUT_TYPES.get(str(call.parameters.get("input_type", "document")))
        if kind is None:
            raise InvalidArgument.for_field(
                "parameters.input_type", 'must be "query" or "document"'
            )
        texts = decode_texts(call.inputs["text"], "inputs[text]")
        if not texts:  # as in Embed
            raise InvalidArgument.for_field("inputs[text].shape", "at least one text is required")
        normalize = bool(call.parameters.get("normalize", False))
        batch_size = self.service.settings.batch_size
        vectors = await self.service.run_blocking(
            lambda: embedder.encode(
                texts, input_type=kind, normalize=normalize, batch_size=batch_size
            )
        )
        return {"embedding": np.asarray(vectors, dtype=np.float32)}


def embedding_models(service: RetrievalService) -> list[InferenceModel]:
    """One OIP model per configured encoder, named by its id."""
    return [EmbeddingModel(service, spec.id) for spec in service.settings.encoders]
