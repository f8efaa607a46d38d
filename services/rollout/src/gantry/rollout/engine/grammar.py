"""Grammar-constrained decoding with XGrammar: compile a format once, mask every step.

A `StructuredOutput` (JSON Schema, regex, choice list or EBNF grammar) compiles against a
tokenizer into an `xgrammar.CompiledGrammar`; each constrained sample then gets its own
`GrammarMatcher`, which says which tokens may come next (a bitmask over the vocabulary)
and advances with every sampled token. Compiling is the expensive part (milliseconds to
seconds for big schemas), so `Grammars` keeps a bounded LRU of compiled formats per
tokenizer, and callers compile on an executor before the engine ever sees the request.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict

import torch
import xgrammar as xgr
from transformers import PreTrainedTokenizerBase

from gantry.rollout.engine.types import StructuredOutput

# Whitespace XGrammar may insert between JSON tokens, per gap: room for pretty-printing,
# but a model that loves spaces cannot loop on them until max_tokens.
MAX_JSON_WHITESPACE = 16
CACHED_GRAMMARS = 256
_LOCATION = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")  # XGrammar's "[time] file.cc:line: "
MESSAGE_CHARS = 300


class StructuredOutputError(ValueError):
    """The format does not compile; `kind` is the StructuredOutput field at fault."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _clip(message: str) -> str:
    """XGrammar's reason without its source location or its echo of the whole input."""
    lines = _LOCATION.sub("", message.strip()).splitlines()
    first = lines[0].split(" The JSON string is:")[0] if lines else ""
    return first if len(first) <= MESSAGE_CHARS else first[: MESSAGE_CHARS - 1] + "…"


def choice_grammar(choices: tuple[str, ...]) -> str:
    """EBNF whose root is exactly one of `choices` (JSON string escapes are EBNF's too)."""
    return "root ::= " + " | ".join(json.dumps(c, ensure_ascii=False) for c in choices)


# XGrammar (0.2.8-0.2.9) writes the characters of a length-bounded string as any byte but
# quote, backslash, CR and LF, so raw control characters (invalid JSON: strict parsers
# refuse them) could be sampled; its unbounded strings exclude them as JSON says.
_LOOSE_STRING_CHAR = r"[^\"\\\r\n]"
_JSON_STRING_CHAR = r"[^\0-\x1f\"\\]"


def json_schema_grammar(schema: str) -> str:
    """EBNF for a JSON Schema, with every string character JSON-legal."""
    grammar = xgr.Grammar.from_json_schema(schema, max_whitespace_cnt=MAX_JSON_WHITESPACE)
    return str(grammar).replace(_LOOSE_STRING_CHAR, _JSON_STRING_CHAR)


class Grammars:
    """Compiled formats for one tokenizer and logits width (thread-safe, bounded LRU)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        vocab_size: int,
        stop_token_ids: tuple[int, ...] = (),
        max_cached: int = CACHED_GRAMMARS,
    ) -> None:
        self.vocab_size = vocab_size
        self.info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids) or None
        )
        # XGrammar's own cache is unbounded by default: ours is the one that bounds.
        self._compiler = xgr.GrammarCompiler(self.info, max_threads=1, cache_enabled=False)
        self._cache: OrderedDict[StructuredOutput, xgr.CompiledGrammar] = OrderedDict()
        self._max_cached = max_cached
        self._lock = threading.Lock()
        self.compiles = 0  # cache misses, for tests and for judging the cache size

    def compile(self, spec: StructuredOutput) -> xgr.CompiledGrammar:
        """The compiled format (blocking on a miss); StructuredOutputError when it is bad."""
        with self._lock:
            hit = self._cache.get(spec)
            if hit is not None:
                self._cache.move_to_end(spec)
                return hit
        compiled = self._compile(spec)  # outside the lock: other formats need not wait
        with self._lock:
            self.compiles += 1
            self._cache[spec] = compiled
            while len(self._cache) > self._max_cached:
                self._cache.popitem(last=False)
        return compiled

    def _compile(self, spec: StructuredOutput) -> xgr.CompiledGrammar:
        try:
            if spec.json_schema is not None:
                return self._compiler.compile_grammar(json_schema_grammar(spec.json_schema))
            if spec.regex is not None:
                return self._compiler.compile_regex(spec.regex)
            if spec.choice is not None:
                return self._compiler.compile_grammar(choice_grammar(spec.choice))
            assert spec.grammar is not None
            return self._compiler.compile_grammar(spec.grammar)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise StructuredOutputError(spec.kind, _clip(str(exc)) or type(exc).__name__) from exc

    def matcher(self, spec: StructuredOutput) -> xgr.GrammarMatcher:
        return xgr.GrammarMatcher(self.compile(spec))

    def allocate(self, rows: int) -> torch.Tensor:
        return xgr.allocate_token_bitmask(rows, self.vocab_size)


def mask_logits(
    logits: torch.Tensor, matchers: list[xgr.GrammarMatcher | None], bitmask: torch.Tensor
) -> torch.Tensor | None:
    """A copy of `logits` [B, V] with each constrained row's forbidden tokens at -inf, or
    None when no row is constrained (the raw logits are left untouched either way)."""
    rows = [i for i, m in enumerate(matchers) if m is not None]
    if not rows:
        return None
    for i in rows:
        matcher = matchers[i]
        assert matcher is not None
        matcher.fill_next_token_bitmask(bitmask, i)
    masked = logits.float().clone()
    xgr.apply_token_bitmask_inplace(masked, bitmask[: len(matchers)], indices=rows)
    return masked
