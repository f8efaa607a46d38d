from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import BatchEncoding

from gantry.models.loading import load_causal_lm, load_encoder, load_vlm
from gantry.models.tiny import build_tiny_causal_lm, build_tiny_encoder, build_tiny_vlm
from gantry.models.tiny.tokenizer import IMAGE_PAD, token_id


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


# --- causal LM ---------------------------------------------------------------------------


def test_causal_lm_dir_is_a_plain_hf_checkpoint(causal_lm_dir: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (causal_lm_dir / name).is_file(), name
    config = json.loads((causal_lm_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3"
    assert config["architectures"] == ["Qwen3ForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"]) == (64, 2)
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (4, 2)
    assert config["max_position_embeddings"] == 2048
    assert 1024 <= config["vocab_size"] <= 2048


def test_causal_lm_reloads_and_runs(causal_lm_dir: Path) -> None:
    lm = load_causal_lm(causal_lm_dir)
    assert type(lm.model).__name__ == "Qwen3ForCausalLM"
    assert not lm.model.training
    assert lm.dtype == torch.float32
    assert lm.context_length == 2048
    assert lm.path == causal_lm_dir.resolve()

    batch = lm.tokenizer(
        ["hello world", "a longer prompt about rivers"], padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        logits = lm.model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], lm.config.vocab_size)
    assert torch.isfinite(logits).all()

    prompt = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hi."}], add_generation_prompt=True, return_tensors="pt"
    )
    assert isinstance(prompt, BatchEncoding)
    out1 = lm.model.generate(**prompt, max_new_tokens=6, min_new_tokens=6)
    out2 = lm.model.generate(**prompt, max_new_tokens=6, min_new_tokens=6)
    assert out1.shape == (1, prompt["input_ids"].shape[1] + 6)
    assert torch.equal(out1, out2)  # greedy by default (generation_config)
    assert isinstance(lm.tokenizer.decode(out1[0]), str)


def test_causal_lm_dtype_override(causal_lm_dir: Path) -> None:
    lm = load_causal_lm(causal_lm_dir, dtype="bfloat16")
    assert lm.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in lm.model.parameters())


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path, causal_lm_dir: Path) -> None:
    again = build_tiny_causal_lm(tmp_path / "again", seed=0)
    other = build_tiny_causal_lm(tmp_path / "other", seed=1)
    ref, same, diff = _weights(causal_lm_dir), _weights(again), _weights(other)
    assert ref.keys() == same.keys() == diff.keys()
    assert all(torch.equal(ref[k], same[k]) for k in ref)
    assert not all(torch.equal(ref[k], diff[k]) for k in ref)
    assert (again / "tokenizer.json").read_bytes() == (
        causal_lm_dir / "tokenizer.json"
    ).read_bytes()


def test_build_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_causal_lm(tmp_path / "m", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_build_refuses_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        build_tiny_causal_lm(tmp_path)


# --- VLM ---------------------------------------------------------------------------------


def test_vlm_reloads_and_uses_the_image(vlm_dir: Path) -> None:
    vlm = load_vlm(vlm_dir)
    assert type(vlm.model).__name__ == "LlavaForConditionalGeneration"
    assert not vlm.model.training
    assert vlm.context_length == 2048
    # The PIL backend: must work without torchvision.
    assert type(vlm.processor.image_processor).__name__.endswith("Pil")

    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}
    ]
    text = vlm.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    red = Image.new("RGB", (40, 30), (220, 20, 20))
    gradient = Image.linear_gradient("L").convert("RGB")

    def logits_for(image: Image.Image) -> torch.Tensor:
        inputs = vlm.processor(images=[image], text=[text], return_tensors="pt")
        image_token_id = token_id(vlm.tokenizer, IMAGE_PAD)
        assert int((inputs["input_ids"] == image_token_id).sum()) == 16  # (32 / 8) ** 2
        assert inputs["pixel_values"].shape == (1, 3, 32, 32)
        with torch.inference_mode():
            out: torch.Tensor = vlm.model(**inputs).logits
        assert out.shape == (1, inputs["input_ids"].shape[1], vlm.tokenizer.__len__())
        return out

    red_logits, gradient_logits = logits_for(red), logits_for(gradient)
    assert torch.isfinite(red_logits).all()
    assert not torch.allclose(red_logits[0, -1], gradient_logits[0, -1])

    inputs = vlm.processor(images=[red], text=[text], return_tensors="pt")
    generated = vlm.model.generate(**inputs, max_new_tokens=4, min_new_tokens=4)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 4


def test_vlm_same_seed_same_weights(tmp_path: Path, vlm_dir: Path) -> None:
    again = _weights(build_tiny_vlm(tmp_path / "vlm", seed=0))
    ref = _weights(vlm_dir)
    assert ref.keys() == again.keys()
    assert all(torch.equal(ref[k], again[k]) for k in ref)


# --- encoder -----------------------------------------------------------------------------


def test_encoder_reloads_and_embeds(encoder_dir: Path) -> None:
    enc = load_encoder(encoder_dir)
    assert type(enc.model).__name__ == "BertModel"
    assert enc.pooling == "mean"  # read from 1_Pooling/config.json
    assert enc.dim == 64
    texts = ["the river was low", "def f(x): return x", "the river was low"]
    vectors = enc.encode(texts)
    assert vectors.shape == (3, 64)
    assert vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(vectors[0], vectors[2])
    assert not torch.allclose(vectors[0], vectors[1])
    # Padding must not leak into the pooled vector: batched == one at a time.
    one_by_one = torch.cat([enc.encode([t]) for t in texts])
    torch.testing.assert_close(vectors, one_by_one, atol=1e-5, rtol=1e-4)
    raw = enc.encode(texts[:1], normalize=False)
    assert abs(float(raw.norm()) - 1.0) > 1e-3
    assert enc.encode([]).shape == (0, 64)
    with pytest.raises(TypeError):
        enc.encode("not a list")


def test_encoder_cls_pooling_differs(encoder_dir: Path) -> None:
    mean = load_encoder(encoder_dir).encode(["hello there world"])
    cls = load_encoder(encoder_dir, pooling="cls")
    assert cls.pooling == "cls"
    assert not torch.allclose(mean, cls.encode(["hello there world"]))


def test_encoder_same_seed_same_weights(tmp_path: Path, encoder_dir: Path) -> None:
    again = _weights(build_tiny_encoder(tmp_path / "enc", seed=0))
    other = _weights(build_tiny_encoder(tmp_path / "enc1", seed=1))
    ref = _weights(encoder_dir)
    assert all(torch.equal(ref[k], again[k]) for k in ref)
    assert not all(torch.equal(ref[k], other[k]) for k in ref)


def test_concurrent_loads_in_one_process_all_succeed(causal_lm_dir: Path) -> None:
    """Servers load on worker threads (two trainer runs, rollout beside a run): building two
    models at once used to leave meta tensors behind and poison every later load."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: load_causal_lm(causal_lm_dir).model, range(4)))
    reference = models[0].state_dict()
    for model in models[1:]:
        for name, tensor in model.state_dict().items():
            assert not tensor.is_meta, name
            assert torch.equal(tensor, reference[name]), name
