"""TLS and mutual TLS on the same server runtime (certificates made with openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2
from pydantic import ValidationError

from gantry.core.client import aio_channel
from gantry.core.server import start_server
from gantry.core.testing.probe import TEST_TOKEN, ProbeService, ProbeSettings, probe_method

PING = wrappers_pb2.StringValue(value="ping")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server cert for localhost/127.0.0.1 and a client cert, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=gantry-test-ca", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf",
                 cwd=d)  # fmt: skip
    return d


async def _echo(port: int, pki: Path, *, client_cert: bool) -> str:
    extra = {}
    if client_cert:
        extra = {
            "client_cert_chain": (pki / "client.pem").read_bytes(),
            "client_private_key": (pki / "client.key").read_bytes(),
        }
    async with aio_channel(
        f"localhost:{port}",
        token=TEST_TOKEN,
        tls=True,
        root_certificates=(pki / "ca.pem").read_bytes(),
        retry=None,
        **extra,  # type: ignore[arg-type]
    ) as ch:
        reply = await probe_method(ch, "Echo")(PING, timeout=10)
    return str(reply.value)


async def test_tls_and_mtls(pki: Path) -> None:
    tls = ProbeSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TEST_TOKEN,
        tls_cert_file=pki / "server.pem", tls_key_file=pki / "server.key",
    )  # fmt: skip
    running = await start_server(ProbeService(tls))
    try:
        assert await _echo(running.port, pki, client_cert=False) == "ping"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as plain:
            with pytest.raises(grpc.aio.AioRpcError):
                await probe_method(plain, "Echo")(PING, timeout=5)
    finally:
        await running.stop(grace_s=0)

    mtls = tls.model_copy(update={"tls_client_ca_file": pki / "ca.pem"})
    running = await start_server(ProbeService(mtls))
    try:
        assert await _echo(running.port, pki, client_cert=True) == "ping"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _echo(running.port, pki, client_cert=False)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(grace_s=0)


def test_half_configured_tls_is_refused(pki: Path) -> None:
    with pytest.raises(ValidationError, match="together"):
        ProbeSettings(auth_disabled=True, tls_cert_file=pki / "server.pem")
