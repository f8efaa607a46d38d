"""Bearer-token authentication (the token comes from a Kubernetes Secret)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from gantry.core.errors import Unauthenticated

AUTHORIZATION = "authorization"
# Kubelet gRPC probes cannot send headers; health must answer without a token.
PUBLIC_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/",)


class BearerAuth:
    def __init__(self, token: str, public_prefixes: Sequence[str] = PUBLIC_METHOD_PREFIXES) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._expected = token.encode()
        self._public = tuple(public_prefixes)

    def is_public(self, method: str) -> bool:
        return method.startswith(self._public)

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> None:
        """Raise `Unauthenticated` unless the call is public or carries the right token."""
        if self.is_public(method):
            return
        header = next((v for k, v in metadata or () if k.lower() == AUTHORIZATION), None)
        if header is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        value = header.decode() if isinstance(header, bytes) else header
        scheme, _, presented = value.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        # Constant-time comparison: no timing oracle on the token.
        if not hmac.compare_digest(presented.strip().encode(), self._expected):
            raise Unauthenticated("invalid bearer token")
