"""AIP-158 page tokens: an opaque, tamper-evident offset."""

from __future__ import annotations

import base64

from gantry.core.errors import InvalidArgument


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"retrieval:{offset}".encode()).decode()


MAX_TOKEN_BYTES = 128


def decode_token(token: str, field: str = "page_token") -> int:
    if not token:
        return 0
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidArgument.for_field(field, "not a token this server issued")
    try:
        tag, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        offset = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument.for_field(field, "not a token this server issued") from exc
    if tag != "retrieval" or offset < 0:
        raise InvalidArgument.for_field(field, "not a token this server issued")
    return offset


def page_size(value: int, default: int, field: str = "page_size", *, maximum: int) -> int:
    """AIP-158: 0 is the default, larger values are lowered to `maximum`, negative is wrong."""
    if value < 0:
        raise InvalidArgument.for_field(field, "must not be negative")
    return min(value or default, maximum)
