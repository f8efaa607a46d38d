"""Settings precedence: defaults < YAML file < environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gantry.core.testing.probe import ProbeSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PORT", "CONFIG_FILE", "GRACE_PERIOD_S", "AUTH_TOKEN", "AUTH_DISABLED"):
        monkeypatch.delenv(f"GANTRY_PROBE_{var}", raising=False)
    monkeypatch.setenv("GANTRY_PROBE_AUTH_DISABLED", "true")


def test_defaults() -> None:
    settings = ProbeSettings()
    assert settings.port == 50051
    assert settings.grace_period_s == 20.0


def test_env_var_uses_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_PROBE_PORT", "6001")
    assert ProbeSettings().port == 6001


def test_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "probe.yaml"
    config.write_text("port: 7001\ngrace_period_s: 3.5\n")
    monkeypatch.setenv("GANTRY_PROBE_CONFIG_FILE", str(config))
    settings = ProbeSettings()
    assert (settings.port, settings.grace_period_s) == (7001, 3.5)
    monkeypatch.setenv("GANTRY_PROBE_PORT", "7002")
    settings = ProbeSettings()
    assert (settings.port, settings.grace_period_s) == (7002, 3.5)


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_PROBE_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        ProbeSettings()


def test_unknown_file_keys_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "probe.yaml"
    config.write_text("prot: 1\n")
    monkeypatch.setenv("GANTRY_PROBE_CONFIG_FILE", str(config))
    with pytest.raises(ValidationError, match="prot"):
        ProbeSettings()


def test_data_dir_defaults_per_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = ProbeSettings().resolved_data_dir()
    assert path == tmp_path / ".local" / "share" / "gantry" / "probe"
    assert path.is_dir()
