"""Typed service settings: defaults < YAML file < environment variables.

Every service subclasses `ServiceSettings` and binds it to its name with
`settings_config("rollout")`, which makes each field `GANTRY_ROLLOUT_<FIELD>` in the
environment. The optional YAML file is named by `GANTRY_<SERVICE>_CONFIG_FILE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gantry.core.ports import DEFAULT_PORTS, METRICS_PORT
from gantry.core.storage import StorageRoot

MiB = 1024 * 1024


def env_prefix(service: str) -> str:
    return f"GANTRY_{service.upper()}_"


def settings_config(service: str) -> SettingsConfigDict:
    """The pydantic-settings config that binds a settings class to one service."""
    return SettingsConfigDict(
        env_prefix=env_prefix(service),
        extra="forbid",
        validate_default=True,
    )


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the file named by `GANTRY_<SERVICE>_CONFIG_FILE`, if any."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        prefix = str(settings_cls.model_config.get("env_prefix", ""))
        path = os.environ.get(f"{prefix}CONFIG_FILE")
        self._data: dict[str, Any] = {}
        if path:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: the settings file must hold a mapping")
            self._data = loaded

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def peer_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """A credential given inline or as a file (a mounted Secret); None when neither is."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text().strip()
    return None


class ServiceSettings(BaseSettings):
    """What every Gantry server understands. Services add their own fields."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    config_file: Path | None = Field(
        default=None, description="YAML file with settings (lower priority than env vars)"
    )
    host: str = Field(default="0.0.0.0", description="Address the gRPC server binds")
    port: int = Field(
        default=DEFAULT_PORTS["rollout"],
        ge=0,
        le=65535,
        description="gRPC port (0 picks a free one)",
    )
    metrics_port: int = Field(
        default=METRICS_PORT, ge=0, le=65535, description="Prometheus /metrics port (0 disables it)"
    )
    port_file: Path | None = Field(
        default=None, description="Write the bound gRPC port here once serving (for port 0)"
    )
    max_message_bytes: int = Field(
        default=64 * MiB, ge=4 * MiB, description="Largest request/response message"
    )
    max_concurrent_rpcs: int | None = Field(
        default=None, ge=1, description="Back-pressure: RPCs beyond this get RESOURCE_EXHAUSTED"
    )
    max_connection_age_s: float | None = Field(
        default=300.0,
        gt=0,
        description="Close connections after this age so new replicas receive traffic",
    )
    max_connection_idle_s: float | None = Field(
        default=900.0, gt=0, description="Close connections that carried no call for this long"
    )
    grace_period_s: float = Field(
        default=20.0, ge=0, description="SIGTERM drain time; keep below the pod's grace period"
    )
    executor_workers: int = Field(
        default=4, ge=1, description="Threads for model/tensor work kept off the event loop"
    )
    auth_token: SecretStr | None = Field(
        default=None, description="Bearer token callers must present"
    )
    auth_token_file: Path | None = Field(
        default=None, description="File holding the bearer token (a mounted Kubernetes Secret)"
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM server certificate; with tls_key_file, serve TLS"
    )
    tls_key_file: Path | None = Field(
        default=None, description="PEM private key of the certificate"
    )
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle; when set, clients must present a cert (mTLS)"
    )
    auth_disabled: bool = Field(
        default=False, description="Accept unauthenticated calls: local development only"
    )
    data_dir: Path | None = Field(
        default=None,
        description="Where the service keeps state (default ~/.local/share/gantry/<service>)",
    )
    log_level: str = Field(default="INFO", description="Python logging level")
    log_json: bool = Field(default=True, description="Structured JSON logs (one object a line)")
    otlp_endpoint: str | None = Field(
        default=None,
        description="Export traces over OTLP/gRPC here (e.g. http://otel-collector:4317); "
        "off when unset, unless the standard OTEL_EXPORTER_OTLP_ENDPOINT is set",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: explicit arguments, then env vars, then the YAML file, then defaults.
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    @model_validator(mode="after")
    def _auth_is_configured(self) -> ServiceSettings:
        if not self.auth_disabled and self.auth_token is None and self.auth_token_file is None:
            prefix = str(self.model_config.get("env_prefix", "GANTRY_<SERVICE>_"))
            raise ValueError(
                f"no bearer token configured: set {prefix}AUTH_TOKEN or {prefix}AUTH_TOKEN_FILE, "
                f"or {prefix}AUTH_DISABLED=true for local development"
            )
        return self

    @model_validator(mode="after")
    def _tls_is_complete(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mTLS) needs tls_cert_file and tls_key_file")
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS (and mTLS with a client CA) credentials, or None for plaintext."""
        if self.tls_cert_file is None or self.tls_key_file is None:
            return None
        client_ca = self.tls_client_ca_file.read_bytes() if self.tls_client_ca_file else None
        return grpc.ssl_server_credentials(
            [(self.tls_key_file.read_bytes(), self.tls_cert_file.read_bytes())],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def resolved_data_dir(self) -> Path:
        """The state directory, created on first use."""
        prefix = str(self.model_config.get("env_prefix", "GANTRY_"))
        service = prefix.removeprefix("GANTRY_").strip("_").lower() or "gantry"
        path = self.data_dir or Path.home() / ".local" / "share" / "gantry" / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def storage_root(self, kind: str, configured: Path | None) -> StorageRoot:
        """The root for client-named `kind` paths: `configured`, else `<data_dir>/<kind>`."""
        path = configured if configured is not None else self.resolved_data_dir() / kind
        path.mkdir(parents=True, exist_ok=True)
        return StorageRoot(kind, path)

    def resolved_token(self) -> str | None:
        """The token callers must send, or None when auth is explicitly disabled."""
        if self.auth_disabled:
            return None
        if self.auth_token is not None:
            return self.auth_token.get_secret_value()
        assert self.auth_token_file is not None
        token = self.auth_token_file.read_text().strip()
        if not token:
            raise ValueError(f"{self.auth_token_file}: the token file is empty")
        return token
