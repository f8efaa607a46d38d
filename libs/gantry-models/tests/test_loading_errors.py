from __future__ import annotations

import contextlib
import json
import shutil
import socket
from pathlib import Path

import pytest
import torch

from gantry.models.checkpoint import check_checkpoint_dir
from gantry.models.dtypes import parse_dtype
from gantry.models.errors import ModelLoadError
from gantry.models.loading import load_causal_lm, load_encoder, load_vlm


def _copy(src: Path, dst: Path, *, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst)
    for name in drop:
        (dst / name).unlink()
    return dst


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_causal_lm(missing)
    assert str(missing) in str(info.value)
    assert info.value.path == str(missing)
    assert isinstance(info.value, ValueError)


def test_hub_repo_id_is_not_downloaded() -> None:
    # Would be a Hub download in plain transformers; here it is just a missing directory
    # (and the autouse network guard would fail the test on any connection attempt).
    with pytest.raises(ModelLoadError, match="never downloaded"):
        load_causal_lm("Qwen/Qwen3-0.6B")


def test_file_instead_of_directory(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a directory"):
        load_encoder(file)


def test_missing_config(tmp_path: Path, causal_lm_dir: Path) -> None:
    broken = _copy(causal_lm_dir, tmp_path / "m", drop=("config.json",))
    with pytest.raises(ModelLoadError, match=r"missing config\.json") as info:
        load_causal_lm(broken)
    assert str(broken) in str(info.value)


def test_missing_weights(tmp_path: Path, causal_lm_dir: Path) -> None:
    broken = _copy(causal_lm_dir, tmp_path / "m", drop=("model.safetensors",))
    with pytest.raises(ModelLoadError, match=r"missing model\.safetensors"):
        load_causal_lm(broken)


def test_legacy_pickle_weights_are_refused_with_a_hint(tmp_path: Path, causal_lm_dir: Path) -> None:
    broken = _copy(causal_lm_dir, tmp_path / "m", drop=("model.safetensors",))
    (broken / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match=r"found pytorch_model\.bin"):
        load_causal_lm(broken)


def test_sharded_index(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"model-00002-of-00002\.safetensors"):
        check_checkpoint_dir(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"")
    assert check_checkpoint_dir(tmp_path) == tmp_path.resolve()


def test_unreadable_index(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="unreadable"):
        check_checkpoint_dir(tmp_path)


def test_missing_tokenizer(tmp_path: Path, causal_lm_dir: Path) -> None:
    broken = _copy(causal_lm_dir, tmp_path / "m", drop=("tokenizer.json", "tokenizer_config.json"))
    with pytest.raises(ModelLoadError, match=r"missing tokenizer\.json or tokenizer_config\.json"):
        load_causal_lm(broken)


def test_vlm_needs_a_processor(causal_lm_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"processor_config\.json"):
        load_vlm(causal_lm_dir)


def test_unknown_architecture_is_wrapped(tmp_path: Path, causal_lm_dir: Path) -> None:
    broken = _copy(causal_lm_dir, tmp_path / "m")
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-model"}))
    with pytest.raises(ModelLoadError, match="no-such-model") as info:
        load_causal_lm(broken)
    assert str(broken) in str(info.value)


def test_remote_code_is_not_run_unless_asked(tmp_path: Path, causal_lm_dir: Path) -> None:
    repo = _copy(causal_lm_dir, tmp_path / "m")
    marker = tmp_path / "executed"
    (repo / "configuration_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    )
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    (repo / "config.json").write_text(json.dumps(config))
    # Without opt-in the built-in qwen3 classes load and the repo's code is never imported.
    assert type(load_causal_lm(repo).model).__name__ == "Qwen3ForCausalLM"
    assert not marker.exists()
    # Opting in does import it (the class is missing, so loading then fails).
    with contextlib.suppress(Exception):
        load_causal_lm(repo, trust_remote_code=True)
    assert marker.read_text() == "ran"


def test_parse_dtype() -> None:
    assert parse_dtype("auto") == "auto"
    assert parse_dtype("bf16") is torch.bfloat16
    assert parse_dtype("torch.float32") is torch.float32
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        parse_dtype("int8")
    with pytest.raises(ValueError, match="floating point"):
        parse_dtype(torch.int64)


def test_bad_pooling_is_rejected(encoder_dir: Path) -> None:
    with pytest.raises(ValueError, match="pooling"):
        load_encoder(encoder_dir, pooling="max")  # type: ignore[arg-type]


def test_network_guard_is_active() -> None:
    # The offline guarantees above rely on this guard; prove it bites.
    with socket.socket() as sock, pytest.raises(AssertionError, match="network"):
        sock.connect(("192.0.2.1", 443))
