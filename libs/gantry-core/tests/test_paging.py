"""AIP-158 page tokens: round trips, scope binding, and refusal of anything else."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from gantry.core.errors import InvalidArgument
from gantry.core.paging import MAX_TOKEN_BYTES, Page, decode_token, encode_token, page_size


@dataclass
class Request:
    page_size: int = 0
    page_token: str = ""


def test_walking_every_page_visits_each_item_once() -> None:
    items = list(range(23))
    seen: list[int] = []
    token = ""
    for _ in range(10):
        page = Page.from_request(Request(5, token), default_size=50, max_size=100, scope="f")
        seen += items[page.start : page.stop]
        token = page.next_token(len(items))
        if not token:
            break
    assert seen == items


def test_sizes_follow_aip_158() -> None:
    assert page_size(0, default=7, maximum=10) == 7
    assert page_size(50, default=7, maximum=10) == 10
    with pytest.raises(InvalidArgument, match="page_size"):
        page_size(-1, default=7, maximum=10)


def test_token_is_bound_to_its_list() -> None:
    token = encode_token(40, scope="collection=a")
    assert decode_token(token, "collection=a") == 40
    with pytest.raises(InvalidArgument, match="different list"):
        decode_token(token, "collection=b")


@pytest.mark.parametrize(
    "token",
    [
        "garbage!",
        base64.urlsafe_b64encode(b"g1:-5:000000000000").decode(),
        base64.urlsafe_b64encode(b"p:5").decode(),
        base64.urlsafe_b64encode(b"g1:+5:" + b"0" * 12).decode(),
        base64.urlsafe_b64encode(b"g1:99999999999999999999:x").decode(),
        "A" * (MAX_TOKEN_BYTES + 1),
        "\u00e9\u00e9\u00e9",
    ],
)
def test_foreign_tokens_are_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_token(token)
    assert info.value.violations[0].field == "page_token"


def test_last_page_has_no_next_token() -> None:
    page = Page(start=10, size=5)
    assert page.next_token(15) == ""
    assert decode_token(page.next_token(16)) == 15
