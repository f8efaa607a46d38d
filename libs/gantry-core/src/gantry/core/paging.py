"""AIP-158 pagination, one way for every List RPC.

A page token is opaque to callers but not secret: it is the next offset plus a short
fingerprint of the request fields that define the list (a collection, a filter). A token
replayed with different fields is INVALID_ARGUMENT, as AIP-158 asks; an edited offset only
selects another page of a list the caller may read anyway, so no signature is needed, and
tokens stay valid across replicas and restarts.

    page = Page.from_request(request, default_size=50, max_size=1000, scope=request.filter)
    items = everything[page.start : page.stop]
    return ListResponse(items=items, next_page_token=page.next_token(len(everything)))
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Protocol

from gantry.core.errors import InvalidArgument

MAX_TOKEN_BYTES = 128
MAX_OFFSET = 2**40
_PREFIX = "g1"
_NOT_OURS = "not a page token this server issued"


class PagedRequest(Protocol):
    @property
    def page_size(self) -> int: ...
    @property
    def page_token(self) -> str: ...


def _fingerprint(scope: str) -> str:
    return hashlib.blake2s(scope.encode(), digest_size=6).hexdigest()


def encode_token(offset: int, scope: str = "") -> str:
    raw = f"{_PREFIX}:{offset}:{_fingerprint(scope)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str = "", *, field: str = "page_token") -> int:
    """The offset a token names; "" is the first page."""
    if not token:
        return 0
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidArgument.for_field(field, _NOT_OURS)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        prefix, offset_text, fingerprint = raw.split(":")
        offset = int(offset_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument.for_field(field, _NOT_OURS) from exc
    if prefix != _PREFIX or not 0 <= offset <= MAX_OFFSET or not offset_text.isdigit():
        raise InvalidArgument.for_field(field, _NOT_OURS)
    if fingerprint != _fingerprint(scope):
        raise InvalidArgument.for_field(
            field, "the token belongs to a different list: keep the other fields unchanged"
        )
    return offset


def page_size(value: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    """AIP-158: 0 means the default, larger values are lowered to `maximum`, negative is wrong."""
    if value < 0:
        raise InvalidArgument.for_field(field, "must not be negative")
    return min(value or default, maximum)


@dataclass(frozen=True)
class Page:
    """The slice of a list one request asks for."""

    start: int
    size: int
    scope: str = ""

    @classmethod
    def from_request(
        cls, request: PagedRequest, *, default_size: int, max_size: int, scope: str = ""
    ) -> Page:
        size = page_size(request.page_size, default=default_size, maximum=max_size)
        return cls(decode_token(request.page_token, scope), size, scope)

    @property
    def stop(self) -> int:
        return self.start + self.size

    def next_token(self, total: int) -> str:
        """The token for the next page, or "" when this page reaches the end of `total` items."""
        return encode_token(self.stop, self.scope) if self.stop < total else ""
