"""Peer targets: a service dials only the addresses its operator configured.

A service that calls another (trainer -> rollout, rollout -> envfarm) carries the stack's
bearer token on those calls, so a request must never be able to point it at an address
of its own choosing. `Peers` holds the operator's choice: a default target
(`GANTRY_<SVC>_<PEER>_TARGET`) and optional named extra targets
(`GANTRY_<SVC>_<PEER>_PEERS='{"blue": "rollout-blue:50051"}'`). A request field may be
empty (the default), a configured name, or exactly one of the configured addresses (so
clients that already pass the address they were given keep working); anything else is
PERMISSION_DENIED naming the field, and nothing is dialled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gantry.core.errors import FailedPrecondition, InvalidArgument, PermissionDenied, echo

MAX_PEER_NAME_BYTES = 512


@dataclass(frozen=True)
class Peers:
    """The configured targets of one kind of peer (e.g. `rollout`)."""

    kind: str
    default: str = ""
    named: Mapping[str, str] = field(default_factory=dict)

    def targets(self) -> set[str]:
        return ({self.default} if self.default else set()) | set(self.named.values())

    def resolve(self, value: str, *, field: str) -> str:
        """The address to dial for request field `field` holding `value`."""
        if len(value.encode("utf-8", "replace")) > MAX_PEER_NAME_BYTES:
            raise InvalidArgument.for_field(field, f"is longer than {MAX_PEER_NAME_BYTES} bytes")
        if not value:
            if not self.default:
                raise FailedPrecondition(
                    f"{field}: no {self.kind} peer is configured on this server (set its "
                    f"{self.kind}_target setting) and the request names none",
                    reason="PEER_NOT_CONFIGURED",
                    metadata={"field": field, "kind": self.kind},
                )
            return self.default
        if value in self.named:
            return self.named[value]
        if value in self.targets():
            return value
        names = ", ".join(sorted(self.named)) or "none"
        raise PermissionDenied(
            f"{field}: {echo(value)} is not a configured {self.kind} peer (named peers: "
            f"{names}); requests may choose among configured peers, never supply an address",
            reason="PEER_NOT_CONFIGURED",
            metadata={"field": field, "kind": self.kind},
        )
