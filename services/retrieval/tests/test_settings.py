"""Settings from the env names the Helm chart sets, and the store each one opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from gantry.retrieval import edge_index
from gantry.retrieval.edge_store import EdgeStore
from gantry.retrieval.service import open_store
from gantry.retrieval.settings import RetrievalSettings
from gantry.retrieval.store import QdrantStore

# qdrant-client warns about an API key over plain HTTP and, from a background probe that
# may land in a later test, about the unreachable server's version.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
    pytest.mark.filterwarnings("ignore:Failed to obtain server version"),
]


def test_chart_env_names_select_a_qdrant_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("s3cret\n")
    monkeypatch.setenv("GANTRY_RETRIEVAL_AUTH_DISABLED", "true")
    monkeypatch.setenv("GANTRY_RETRIEVAL_QDRANT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("GANTRY_RETRIEVAL_QDRANT_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("GANTRY_RETRIEVAL_ENCODERS", '[{"id": "a"}, {"id": "b", "path": "/m"}]')
    monkeypatch.setenv("GANTRY_RETRIEVAL_DEFAULT_ENCODER_ID", "b")
    settings = RetrievalSettings()
    assert settings.qdrant_url == "http://127.0.0.1:1"
    assert [e.id for e in settings.encoders] == ["a", "b"] and settings.encoders[1].path == "/m"
    store = open_store(settings)  # only a version probe, refused at once; no data calls
    try:
        assert isinstance(store, QdrantStore) and not store.embedded
        remote = store.client._client  # the qdrant-client transport behind the facade
        assert type(remote).__name__ == "QdrantRemote"
        assert getattr(remote, "_api_key", None) == "s3cret"
    finally:
        store.close()


def test_embedded_store_defaults_under_the_data_dir(tmp_path: Path) -> None:
    settings = RetrievalSettings(auth_disabled=True, data_dir=tmp_path)
    store = open_store(settings)
    try:
        assert isinstance(store, EdgeStore) and (tmp_path / "qdrant-edge").is_dir()
    finally:
        store.close()
    local = open_store(
        RetrievalSettings(auth_disabled=True, data_dir=tmp_path, qdrant_embedded="local")
    )
    try:
        assert isinstance(local, QdrantStore) and local.embedded and (tmp_path / "qdrant").is_dir()
    finally:
        local.close()


def test_inconsistent_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="default_encoder_id"):
        RetrievalSettings(auth_disabled=True, default_encoder_id="missing")
    with pytest.raises(ValueError, match="chunk_overlap_words"):
        RetrievalSettings(auth_disabled=True, chunk_words=10, chunk_overlap_words=10)


def test_index_builder_priority_is_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANTRY_RETRIEVAL_EDGE_INDEX_NICE", "0")
    store = open_store(RetrievalSettings(auth_disabled=True, data_dir=tmp_path))
    try:
        assert isinstance(store, EdgeStore) and store.index.nice == 0
    finally:
        store.close()
    with pytest.raises(ValueError, match="edge_index_nice"):
        RetrievalSettings(auth_disabled=True, edge_index_nice=20)
    # The builder refuses arguments it does not understand before touching any shard.
    assert edge_index.main([]) == 2
    assert edge_index.main([str(tmp_path), "high"]) == 2
