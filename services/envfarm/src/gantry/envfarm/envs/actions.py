"""Safe parsing of VisGym-style string actions such as "('move', 'up')" or "stop".

A tiny recursive-descent parser over a fixed literal grammar: numbers, quoted strings,
bare words, and tuples/lists of those, nested at most three deep and at most 512
characters long. Nothing is ever evaluated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_ACTION_CHARS = 512
MAX_DEPTH = 3

Value = int | float | str | tuple["Value", ...]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[()\[\],])
    )""",
    re.VERBOSE,
)


class ActionError(ValueError):
    """The action text is malformed or not allowed here; the message is the feedback."""


@dataclass(frozen=True)
class Action:
    name: str
    args: tuple[Value, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ActionError(f"unexpected character {text[pos : pos + 1]!r} at {pos}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ActionError("the action ends too early")
        self.pos += 1
        return token

    def value(self, depth: int) -> Value:
        kind, text = self.take()
        if kind == "num":
            if re.fullmatch(r"[-+]?\d+", text):
                return int(text)
            number = float(text)
            if not math.isfinite(number):
                raise ActionError(f"the number {text[:16]}... is out of range")
            return number
        if kind == "str":
            try:
                return bytes(text[1:-1], "utf-8").decode("unicode_escape")
            except UnicodeDecodeError as exc:
                raise ActionError(f"a bad escape in the string {text[:24]!r}") from exc
        if kind == "word":
            return text
        if text in "([":
            if depth >= MAX_DEPTH:
                raise ActionError("the action is nested too deeply")
            closing = ")" if text == "(" else "]"
            items: list[Value] = []
            while True:
                token = self.peek()
                if token is not None and token[1] == closing:
                    self.take()
                    return tuple(items)
                items.append(self.value(depth + 1))
                separator = self.take()[1]
                if separator == closing:
                    return tuple(items)
                if separator != ",":
                    raise ActionError(f"expected ',' or {closing!r}, got {separator!r}")
        raise ActionError(f"unexpected {text!r}")


def parse_action(text: str) -> Action:
    """Parse `text` into an action name and its arguments, or raise `ActionError`."""
    if not isinstance(text, str):
        raise ActionError("the action must be a string")
    if len(text) > MAX_ACTION_CHARS:
        raise ActionError(f"the action is longer than {MAX_ACTION_CHARS} characters")
    tokens = _tokens(text)
    if not tokens:
        raise ActionError("the action is empty")
    parser = _Parser(tokens)
    value = parser.value(0)
    if parser.peek() is not None:
        raise ActionError("unexpected text after the action")
    if isinstance(value, str):
        return Action(value.strip().lower(), ())
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return Action(value[0].strip().lower(), value[1:])
    raise ActionError("an action is a name or a tuple starting with a name, e.g. ('move', 'up')")


def expect_int(value: Value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ActionError(f"{what} must be an integer")
    if not low <= int(value) <= high:
        raise ActionError(f"{what} must be between {low} and {high}")
    return int(value)


def expect_float(value: Value, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActionError(f"{what} must be a number")
    if not low <= value <= high:  # compared exactly: a 400-digit int never becomes a float
        raise ActionError(f"{what} must be between {low} and {high}")
    return float(value)


def expect_args(action: Action, count: int, usage: str) -> tuple[Value, ...]:
    """Accept `(name, a, b)` or `(name, [a, b])` spellings of `count` arguments."""
    args = action.args
    if len(args) == 1 and isinstance(args[0], tuple) and count > 1:
        args = args[0]
    if len(args) != count:
        raise ActionError(f"usage: {usage}")
    return args
