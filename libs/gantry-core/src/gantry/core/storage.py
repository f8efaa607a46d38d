"""Storage roots: every path a client can name stays inside a folder the operator chose.

A service keeps one `StorageRoot` per kind of thing a request may point at (datasets,
checkpoints, outputs, encoders). `root.resolve(value, field=...)` accepts a plain path or
a `file://` URI, relative to the root or absolute inside it, resolves symlinks, and
answers `PermissionDenied` naming the field for anything that would leave the root:
`..` components, a symlink pointing out, another URI scheme, a root the operator did not
configure. Malformed values (NUL bytes, over-long names) are `InvalidArgument`.

Checks happen on the resolved path, so a symlink planted inside the root that points
outside it is refused too. The window between this check and a later open is closed
for the threat model here (clients name paths; they cannot create symlinks in the root).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gantry.core.errors import InvalidArgument, NotFound, PermissionDenied, echo

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def _check_shape(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidArgument.for_field(field, "must not contain NUL characters")
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_PATH_BYTES:
        raise InvalidArgument.for_field(
            field, f"is {len(raw)} bytes; paths are at most {MAX_PATH_BYTES}"
        )
    for part in value.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise InvalidArgument.for_field(
                field, f"has a path component over {MAX_NAME_BYTES} bytes: {echo(part)}"
            )


def strip_file_scheme(value: str, field: str, allowed_schemes: tuple[str, ...] = ()) -> str:
    """`file:///x` -> `/x`; a plain path unchanged; any other scheme refused."""
    if value.startswith("file://"):
        return value.removeprefix("file://")
    scheme, sep, _ = value.partition("://")
    if sep and scheme.isascii() and scheme.replace("+", "").replace("-", "").isalnum():
        if scheme.lower() in allowed_schemes:
            return value
        raise PermissionDenied(
            f"{field}: scheme {echo(scheme)} is not allowed; use a path inside the "
            "configured storage root",
            reason="SCHEME_NOT_ALLOWED",
            metadata={"field": field, "scheme": scheme},
        )
    return value


@dataclass(frozen=True)
class StorageRoot:
    """One configured root folder for one kind of client-named path."""

    kind: str
    path: Path | None

    def resolve(
        self, value: str, *, field: str, must_exist: bool = False, allow_root: bool = True
    ) -> Path:
        """The real path `value` names inside this root, or a typed error naming `field`."""
        if not value:
            raise InvalidArgument.for_field(field, "is required")
        _check_shape(value, field)
        if self.path is None:
            raise PermissionDenied(
                f"{field}: no {self.kind} root is configured on this server, so no "
                f"{self.kind} path can be named",
                reason="STORAGE_ROOT_NOT_CONFIGURED",
                metadata={"field": field, "kind": self.kind},
            )
        raw = strip_file_scheme(value, field)
        if ".." in Path(raw).parts:
            raise self._denied(field, "'..' is not allowed")
        root = Path(os.path.realpath(self.path))
        candidate = Path(raw) if os.path.isabs(raw) else root / raw
        real = Path(os.path.realpath(candidate))
        if real != root and root not in real.parents:
            raise self._denied(field, "resolves outside the root")
        if real == root and not allow_root:
            raise self._denied(field, "must name something inside the root, not the root")
        if must_exist and not real.exists():
            raise NotFound(
                f"{field}: {echo(value)} does not exist under the {self.kind} root",
                resource_type=self.kind,
                resource_name=value,
            )
        return real

    def _denied(self, field: str, why: str) -> PermissionDenied:
        return PermissionDenied(
            f"{field}: {why}; {self.kind} paths must stay inside the configured {self.kind} root",
            reason="PATH_OUTSIDE_ROOT",
            metadata={"field": field, "kind": self.kind},
        )


def safe_name(value: str, *, field: str, max_bytes: int = 128) -> str:
    """A single path component a client may name (an id, a split): no separators or dots."""
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if len(value.encode()) > max_bytes:
        raise InvalidArgument.for_field(field, f"is longer than {max_bytes} bytes")
    if value in {".", ".."} or "/" in value or "\\" in value or "\x00" in value:
        raise PermissionDenied(
            f"{field}: {echo(value)} must be a plain name (no '/', '\\\\', '..')",
            reason="PATH_OUTSIDE_ROOT",
            metadata={"field": field},
        )
    return value


def write_atomically(path: os.PathLike[str] | str, data: bytes | str) -> None:
    """Replace `path` with `data` in one step; concurrent writers never share a temp file."""
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
