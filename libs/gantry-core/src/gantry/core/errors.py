"""One error model for every Gantry service (AIP-193).

Handlers raise the typed errors below; the runtime interceptor turns them into a gRPC
status with `google.rpc.Status` details (ErrorInfo, BadRequest, ResourceInfo, RetryInfo)
sent as `grpc-status-details-bin`. Clients turn an `RpcError` back into the same types
with `from_rpc_error`, so both sides speak one vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "gantry.dev"
# Error details never carry more than this of any caller-supplied value (a 10 MB id
# echoed into trailers would turn NOT_FOUND into RESOURCE_EXHAUSTED).
ECHO_LIMIT = 256
MESSAGE_LIMIT = 1024


def clip(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` cut to at most `limit` UTF-8 bytes, marked when cut."""
    raw = value.encode("utf-8", "replace")
    if len(raw) <= limit:
        return value
    head = raw[: max(limit - 24, 0)].decode("utf-8", "ignore")
    return f"{head}...[{len(raw)} bytes]"


def echo(value: object, limit: int = 64) -> str:
    """A short repr of a caller's value for a message: `'abc'` or `'abc...[N bytes]'`."""
    return repr(clip(value if isinstance(value, str) else str(value), limit))


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: `field` is a dotted path such as `sampling.top_p`."""

    field: str
    description: str


class GantryError(Exception):
    """Base class: a canonical status code, a machine-readable reason and a message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        message = clip(message, MESSAGE_LIMIT)
        super().__init__(message)
        self.message = message
        self.reason = clip(reason or self.default_reason, 63)
        self.metadata = {clip(k, 63): clip(v) for k, v in (metadata or {}).items()}

    def details(self) -> list[any_pb2.Any]:
        """The `google.rpc` detail messages carried with the status."""
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=DOMAIN, metadata=self.metadata
        )
        packed = any_pb2.Any()
        packed.Pack(info)
        return [packed, *self._extra_details()]

    def _extra_details(self) -> list[any_pb2.Any]:
        return []

    def to_status(self) -> status_pb2.Status:
        status: status_pb2.Status = status_pb2.Status(
            code=self.code.value[0], message=self.message, details=self.details()
        )
        return status

    def to_grpc_status(self) -> grpc.Status:
        status: grpc.Status = rpc_status.to_status(self.to_status())
        return status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


class InvalidArgument(GantryError):
    """The request is malformed; `violations` name each bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = [
            FieldViolation(clip(v.field), clip(v.description, MESSAGE_LIMIT // 2))
            for v in violations[:32]
        ]

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        """The common case: one field is wrong. The message names the field."""
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)])

    def _extra_details(self) -> list[any_pb2.Any]:
        if not self.violations:
            return []
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in self.violations
            ]
        )
        return [_pack(bad)]


class _ResourceError(GantryError):
    def __init__(
        self,
        message: str,
        *,
        resource_type: str = "",
        resource_name: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.resource_type = clip(resource_type)
        self.resource_name = clip(resource_name)

    def _extra_details(self) -> list[any_pb2.Any]:
        if not (self.resource_type or self.resource_name):
            return []
        info = error_details_pb2.ResourceInfo(
            resource_type=self.resource_type, resource_name=self.resource_name
        )
        return [_pack(info)]


class NotFound(_ResourceError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(_ResourceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(GantryError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class OutOfRange(GantryError):
    code = grpc.StatusCode.OUT_OF_RANGE
    default_reason = "OUT_OF_RANGE"


class _RetryableError(GantryError):
    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_s = retry_after_s

    def _extra_details(self) -> list[any_pb2.Any]:
        if self.retry_after_s is None:
            return []
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after_s * 1e9))
        return [_pack(error_details_pb2.RetryInfo(retry_delay=delay))]


class ResourceExhausted(_RetryableError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(_RetryableError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Aborted(_RetryableError):
    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unauthenticated(GantryError):
    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(GantryError):
    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class DeadlineExceeded(GantryError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class Cancelled(GantryError):
    code = grpc.StatusCode.CANCELLED
    default_reason = "CANCELLED"


class Unimplemented(GantryError):
    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class Internal(GantryError):
    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"


_BY_CODE: dict[grpc.StatusCode, type[GantryError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        OutOfRange,
        ResourceExhausted,
        Unavailable,
        Aborted,
        Unauthenticated,
        PermissionDenied,
        DeadlineExceeded,
        Cancelled,
        Unimplemented,
        Internal,
    )
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code_from_number(number: int) -> grpc.StatusCode:
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def error_from_status(status: status_pb2.Status) -> GantryError:
    """Rebuild a typed error from a `google.rpc.Status` (e.g. an `Operation.error`)."""
    code = status_code_from_number(status.code)
    cls = _BY_CODE.get(code, Internal)
    reason: str | None = None
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    resource: error_details_pb2.ResourceInfo | None = None
    retry_after: float | None = None
    for detail in status.details:
        # Unpack() returns False when the Any holds another type.
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        found = error_details_pb2.ResourceInfo()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        elif detail.Unpack(found):
            resource = found
        elif detail.Unpack(retry):
            retry_after = retry.retry_delay.ToNanoseconds() / 1e9
    if cls is InvalidArgument:
        return InvalidArgument(
            status.message, violations=violations, reason=reason, metadata=metadata
        )
    if issubclass(cls, _ResourceError):
        return cls(
            status.message,
            resource_type=resource.resource_type if resource else "",
            resource_name=resource.resource_name if resource else "",
            reason=reason,
            metadata=metadata,
        )
    if issubclass(cls, _RetryableError):
        return cls(status.message, retry_after_s=retry_after, reason=reason, metadata=metadata)
    return cls(status.message, reason=reason, metadata=metadata)


def from_rpc_error(error: grpc.RpcError) -> GantryError:
    """Client side: turn a failed call into the typed error the server raised."""
    status: status_pb2.Status | None = None
    if hasattr(error, "trailing_metadata"):  # grpc.Call and grpc.aio.AioRpcError alike
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except ValueError:  # details disagree with the status line: trust the line
            status = None
    if status is None:
        code_fn = getattr(error, "code", None)
        details_fn = getattr(error, "details", None)
        code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
        message = details_fn() if callable(details_fn) else str(error)
        status = status_pb2.Status(code=code.value[0], message=message or "")
    return error_from_status(status)


def status_from_exception(exc: BaseException) -> status_pb2.Status:
    """What a long-running operation stores in `Operation.error` when its job fails."""
    if isinstance(exc, GantryError):
        return exc.to_status()
    return Internal(f"{type(exc).__name__}: {exc}").to_status()


OK_STATUS = status_pb2.Status(code=code_pb2.OK)
