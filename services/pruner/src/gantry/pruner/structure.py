"""Line structure of a context: the atomic units the selector keeps or drops whole.

A *unit* is a run of lines that must never be cut: a Python statement (a multi-line call,
a triple-quoted string), a block header (decorators + a multi-line signature up to its
colon; with the body too when the body shares the header's logical line, as in
`@overload` + `def f(\n  x,\n) -> T: ...`), or, for other languages, a line plus its
bracket continuation lines. Each unit lists the units it depends on: keeping a body
statement keeps the headers that enclose it, keeping an ``else:``/``except`` clause keeps
its ``if``/``try`` header, a ``try:`` keeps its first handler, a ``match x:`` its first
``case``, and for brace languages an opener and its closing line go together.

So a Python unit is always a whole number of logical lines, decorators go with their
``def``/``class``, and every kept header keeps a body (its own lines, or the ``...``
placeholder `select.render` writes): pruned Python parses whenever the input does. Python
uses the syntax tree; Python longer than `MAX_PARSE_CHARS` uses the token stream (the
same units, without `ast.parse`'s long interpreter-lock hold); everything else (and Python
that does not tokenize or parse) uses indentation blocks.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, field

# `ast.parse` holds the interpreter lock for its whole run (~2.5 s per MB here): longer
# texts are not parsed, so a large Prune never stalls the server's other calls.
MAX_PARSE_CHARS = 256 * 1024

# Canonical language names; anything else is rejected by the service.
PYTHON = "python"
TEXT = "text"
LANGUAGE_ALIASES: dict[str, str] = {
    "python": PYTHON,
    "py": PYTHON,
    "python3": PYTHON,
    "text": TEXT,
    "plain": TEXT,
    "plaintext": TEXT,
    "txt": TEXT,
    "markdown": "markdown",
    "md": "markdown",
    "javascript": "javascript",
    "js": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "java": "java",
    "kotlin": "kotlin",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "csharp": "csharp",
    "c#": "csharp",
    "go": "go",
    "rust": "rust",
    "ruby": "ruby",
    "php": "php",
    "swift": "swift",
    "scala": "scala",
    "shell": "shell",
    "bash": "shell",
    "sh": "shell",
    "yaml": "yaml",
    "json": "json",
    "toml": "toml",
    "html": "html",
    "xml": "xml",
    "css": "css",
    "sql": "sql",
    "log": TEXT,
}
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(sorted(set(LANGUAGE_ALIASES.values())))

_EXTENSIONS = {
    ".py": PYTHON,
    ".pyi": PYTHON,
    ".md": "markdown",
    ".rst": TEXT,
    ".txt": TEXT,
    ".js": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".toml": "toml",
    ".html": "html",
    ".xml": "xml",
    ".css": "css",
    ".sql": "sql",
    ".log": TEXT,
}


def normalize_language(language: str) -> str | None:
    """Canonical name for a language hint; ``""`` for "detect"; ``None`` when unknown."""
    key = language.strip().lower()
    if not key:
        return ""
    return LANGUAGE_ALIASES.get(key)


def language_for_path(path: str) -> str:
    """Language from a file name's extension ("" when unknown: detect from content)."""
    match = re.search(r"\.[A-Za-z0-9+]+$", path)
    return _EXTENSIONS.get(match.group(0).lower(), "") if match else ""


_CODE_HINT = re.compile(r"^\s*(def|class|import|from|async def|@)\b|=|\(", re.MULTILINE)


def detect_language(text: str) -> str:
    """``python`` when the text parses as Python and looks like code; ``code`` for other
    brace/semicolon code; else ``text``. Texts over `MAX_PARSE_CHARS` are never
    ``python`` (they are not parsed)."""
    if len(text) <= MAX_PARSE_CHARS:
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass
        else:
            if _CODE_HINT.search(text):
                return PYTHON
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if lines:
        code_like = sum(line.endswith(("{", "}", ";", ")")) for line in lines)
        if code_like / len(lines) > 0.3:
            return "code"
    return TEXT


@dataclass(slots=True)
class Unit:
    """Lines ``start..end`` (0-based, inclusive) kept or dropped together."""

    start: int
    end: int
    deps: list[int] = field(default_factory=list)
    # Blank or comment-only lines: no syntax of their own, free to drop.
    free: bool = False
    # A Python block header: if none of its body is kept, a placeholder statement is needed.
    header: bool = False
    body_start: int = -1
    body_end: int = -1
    body_indent: str = ""
    match_header: bool = False  # `match x:` (its body lines are `case` clauses)


# How a structure was built.
SYNTAX_TREE = "syntax_tree"
TOKENS = "tokens"
INDENTATION = "indentation"


@dataclass(slots=True)
class Structure:
    language: str
    units: list[Unit]
    line_unit: list[int]
    builder: str  # SYNTAX_TREE, TOKENS or INDENTATION

    @property
    def python_syntax(self) -> bool:
        """Units follow Python's grammar: markers are comments, emptied bodies get `...`,
        and the pruned text parses whenever the input does."""
        return self.builder != INDENTATION

    def closure(self, seeds: set[int]) -> set[int]:
        """``seeds`` plus every unit they depend on, transitively."""
        kept = set(seeds)
        stack = list(seeds)
        while stack:
            for dep in self.units[stack.pop()].deps:
                if dep not in kept:
                    kept.add(dep)
                    stack.append(dep)
        return kept


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _indent_width(line: str) -> int:
    return len(_indent(line).expandtabs(4))


def _is_free_line(line: str, comment: str | None) -> bool:
    stripped = line.strip()
    return not stripped or (comment is not None and stripped.startswith(comment))


def build_structure(lines: list[str], language: str) -> Structure:
    """Units of ``lines`` (no trailing newlines) for a canonical ``language``."""
    if language == PYTHON:
        big = sum(len(line) + 1 for line in lines) > MAX_PARSE_CHARS
        built = python_token_structure(lines) if big else _python_structure(lines)
        if built is not None:
            return built
    return _indent_structure(lines, language)


# ---- Python: the syntax tree -------------------------------------------------------------


class _PythonBuilder:
    """Units from the syntax tree; ``lines`` are the parser's lines (see `_parser_lines`)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.units: list[Unit] = []

    def free(self, index: int) -> bool:
        return _is_free_line(self.lines[index], "#")

    def add(self, start: int, end: int, deps: list[int], **kw: object) -> int:
        self.units.append(Unit(start=start, end=end, deps=list(deps), **kw))  # type: ignore[arg-type]
        return len(self.units) - 1

    def block(self, body: list[ast.stmt], deps: list[int]) -> None:
        for stmt in body:
            self.stmt(stmt, deps)

    def stmt(self, node: ast.stmt, deps: list[int]) -> None:
        clauses = self.clauses(node)
        start = _first_line(node)
        end = (node.end_lineno or node.lineno) - 1
        if not clauses:
            self.add(start, end, deps)
            return
        headers: list[int] = []
        prev_end = start - 1
        for i, (explicit, body, sub_clauses) in enumerate(clauses):
            header_start = start if i == 0 else explicit if explicit is not None else prev_end + 1
            first = _first_line(body[0])
            while i > 0 and header_start < first and self.free(header_start):
                header_start += 1
            last = max((s.end_lineno or s.lineno) for s in body) - 1
            clause_deps = deps if i == 0 else [headers[0]]
            if first <= header_start or self.inline(body[0]):
                # The body shares the header's logical line (`def f(\n) -> T: ...`,
                # `@overload` + `def g(x): ...`): decorators, signature and body are one unit.
                headers.append(self.add(header_start, last, clause_deps))
            else:
                header_end = first - 1
                while header_end > header_start and self.free(header_end):
                    header_end -= 1
                index = self.add(
                    header_start,
                    header_end,
                    clause_deps,
                    header=True,
                    body_start=header_end + 1,
                    body_end=last,
                    body_indent=_indent(self.lines[first]),
                )
                headers.append(index)
                if sub_clauses:
                    first_case = len(self.units)
                    for case in sub_clauses:
                        self.stmt(case, [index])
                    self.units[index].deps.append(first_case)  # `match x:` needs a case
                else:
                    self.block(body, [index])
            prev_end = last
        if isinstance(node, ast.Try | ast.TryStar) and len(headers) > 1:
            self.units[headers[0]].deps.append(headers[1])  # `try:` needs a handler

    def inline(self, first: ast.stmt) -> bool:
        """Whether a body's first statement continues its header's logical line: code
        before it on its line (after the colon), or a backslash ending the line above
        (outside a comment: `if x:  # \\` does not continue)."""
        row = first.lineno - 1
        before = self.lines[row].encode("utf-8")[: first.col_offset]  # col_offset: bytes
        if before.strip():
            return True
        above = self.lines[row - 1].rstrip() if row > 0 else ""
        return above.endswith("\\") and "#" not in _STRING.sub("", above)

    def clauses(
        self, node: ast.stmt
    ) -> list[tuple[int | None, list[ast.stmt], list[ast.stmt] | None]]:
        """(explicit header line, body, nested clause statements) per clause."""
        out: list[tuple[int | None, list[ast.stmt], list[ast.stmt] | None]] = []
        if isinstance(node, ast.If):
            out.append((None, node.body, None))
            orelse = node.orelse
            while orelse:
                nested = orelse[0]
                if (
                    len(orelse) == 1
                    and isinstance(nested, ast.If)
                    and self.lines[nested.lineno - 1].lstrip().startswith("elif")
                ):
                    out.append((nested.lineno - 1, nested.body, None))
                    orelse = nested.orelse
                else:
                    out.append((None, orelse, None))
                    break
        elif isinstance(node, ast.For | ast.AsyncFor | ast.While):
            out.append((None, node.body, None))
            if node.orelse:
                out.append((None, node.orelse, None))
        elif isinstance(node, ast.Try | ast.TryStar):
            out.append((None, node.body, None))
            for handler in node.handlers:
                out.append((handler.lineno - 1, handler.body, None))
            if node.orelse:
                out.append((None, node.orelse, None))
            if node.finalbody:
                out.append((None, node.finalbody, None))
        elif isinstance(
            node,
            ast.With
            | ast.AsyncWith
            | ast.FunctionDef
            | ast.AsyncFunctionDef
            | ast.ClassDef
            | _CaseStmt,
        ):
            out.append((None, node.body, None))
        elif isinstance(node, ast.Match) and node.cases:
            # The `match x:` header; each `case` is a compound statement in its body.
            cases: list[ast.stmt] = []
            boundary = (node.subject.end_lineno or node.lineno) - 1
            for case in node.cases:
                cases.append(_CaseStmt(case, self.case_line(boundary, case)))
                boundary = (cases[-1].end_lineno or 1) - 1
            out.append((None, cases, cases))
        return out

    def case_line(self, after: int, case: ast.match_case) -> int:
        """0-based line of a `case` keyword: the first line after ``after`` (the subject's
        or the previous case's last line) that starts with it; a pattern such as
        `case (` + newline + `1` starts below its keyword."""
        pattern_row = case.pattern.lineno - 1
        for row in range(after + 1, pattern_row + 1):
            if _CASE.match(self.lines[row]):
                return row
        return pattern_row


def _first_line(node: ast.stmt) -> int:
    """0-based first line of a statement, decorators included."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return min([node.lineno - 1] + [d.lineno - 1 for d in node.decorator_list])
    return node.lineno - 1


_CASE = re.compile(r"\s*case\b")


class _CaseStmt(ast.stmt):
    """A `case` clause seen as a compound statement (for the builder only)."""

    def __init__(self, case: ast.match_case, row: int) -> None:
        super().__init__()
        self.lineno = row + 1
        self.end_lineno = max((s.end_lineno or s.lineno) for s in case.body)
        self.col_offset = 0  # the keyword starts its line: never inline with `match x:`
        self.body = case.body


_LONE_CR = re.compile(r"\r(?!\Z)")


def _parser_lines(lines: list[str]) -> tuple[list[str], list[int]]:
    """The lines as Python's parser numbers them (a lone ``\r`` also ends a line; texts
    are split on ``\n`` only), and each one's index in ``lines``."""
    if not any("\r" in line for line in lines):
        return lines, list(range(len(lines)))
    parsed: list[str] = []
    row_of: list[int] = []
    for index, line in enumerate(lines):
        parts = _LONE_CR.split(line)
        parsed.extend(parts)
        row_of.extend([index] * len(parts))
    return parsed, row_of


def _python_structure(lines: list[str]) -> Structure | None:
    source = "\n".join(lines)
    if len(source) > MAX_PARSE_CHARS:
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    parsed, row_of = _parser_lines(lines)
    builder = _PythonBuilder(parsed)
    builder.block(tree.body, [])
    units = builder.units
    if len(parsed) != len(lines):  # back to our lines; units sharing one are merged
        for unit in units:
            unit.start, unit.end = row_of[unit.start], row_of[unit.end]
            if unit.header:
                unit.body_start, unit.body_end = row_of[unit.body_start], row_of[unit.body_end]
    return _finish(lines, units, PYTHON, builder=SYNTAX_TREE, comment="#")


# ---- Python over MAX_PARSE_CHARS: the token stream ---------------------------------------

_CLAUSES = frozenset({"elif", "else", "except", "finally"})


class _InvalidPython(Exception):
    pass


@dataclass(slots=True)
class _Block:
    header: int  # unit index of the block's header; -1 for the module
    match: bool = False  # a `match x:` body: every line is a `case`
    chain: int = -1  # first unit of the last statement: the head `elif`/`except`/... need
    awaiting_handler: bool = False  # the chain head is a `try` with no handler seen yet
    has_case: bool = False
    last_row: int = -1


class _TokenBuilder:
    """Units from `tokenize`: a unit is a logical line (decorators join the next one), a
    line ending in ``:`` followed by an INDENT is a block header, and DEDENT closes it.
    Pure Python, so the interpreter lock is released between tokens (unlike `ast.parse`)."""

    def __init__(self) -> None:
        self.units: list[Unit] = []
        self.blocks = [_Block(header=-1)]
        self.opener = -1  # a header whose INDENT is due
        self.decorated_from = -1

    def run(self, tokens: Iterator[tokenize.TokenInfo]) -> None:
        start = -1
        first = last = ""
        for token in tokens:
            kind = token.type
            if kind in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING):
                continue
            if kind == tokenize.INDENT:
                if self.opener < 0:
                    raise _InvalidPython("unexpected indent")
                header = self.units[self.opener]
                header.body_indent = token.string
                self.blocks.append(_Block(header=self.opener, match=header.match_header))
                self.opener = -1
            elif kind == tokenize.DEDENT:
                block = self.blocks.pop()
                self.units[block.header].body_end = block.last_row
                self.blocks[-1].last_row = max(self.blocks[-1].last_row, block.last_row)
            elif kind in (tokenize.NEWLINE, tokenize.ENDMARKER):
                if start >= 0:
                    self.logical_line(start, token.start[0] - 1, first, last)
                    start = -1
            else:
                if self.opener >= 0:
                    raise _InvalidPython("expected an indented block")
                if start < 0:
                    start, first = token.start[0] - 1, token.string
                last = token.string
        if self.opener >= 0 or self.decorated_from >= 0 or len(self.blocks) != 1:
            raise _InvalidPython("unfinished block")

    def logical_line(self, start: int, end: int, first: str, last: str) -> None:
        if first == "@":  # a decorator: part of the next def/class's unit
            if self.decorated_from < 0:
                self.decorated_from = start
            return
        if self.decorated_from >= 0:
            start, self.decorated_from = self.decorated_from, -1
        block = self.blocks[-1]
        deps = [block.header] if block.header >= 0 else []
        clause = first in _CLAUSES and block.chain >= 0
        if clause:
            deps = [block.chain]
        index = len(self.units)
        opens = last == ":"
        unit = Unit(start=start, end=end, deps=deps, header=opens)
        if opens:
            unit.body_start = end + 1
            unit.match_header = first == "match"
            self.opener = index
        self.units.append(unit)
        if clause:
            if block.awaiting_handler:  # `try:` needs its first handler
                self.units[block.chain].deps.append(index)
                block.awaiting_handler = False
        else:
            block.chain, block.awaiting_handler = index, first == "try"
        if block.match and not block.has_case:  # `match x:` needs its first case
            self.units[block.header].deps.append(index)
            block.has_case = True
        block.last_row = end


def python_token_structure(lines: list[str]) -> Structure | None:
    """Units of Python from its tokens (``None`` when it does not tokenize). Used over
    `MAX_PARSE_CHARS`; equal to the syntax tree's units on valid Python."""
    source = "\n".join(lines) + "\n"
    if _LONE_CR.search(source.replace("\r\n", "\n")):
        return None  # the tokenizer's lines would not be ours
    builder = _TokenBuilder()
    try:
        builder.run(tokenize.generate_tokens(io.StringIO(source).readline))
    except (_InvalidPython, tokenize.TokenError, SyntaxError):
        return None
    return _finish(lines, builder.units, PYTHON, builder=TOKENS, comment="#")


# ---- other languages: indentation blocks -------------------------------------------------

_STRING = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`")
_CLOSER = re.compile(r"^\s*(?:[}\])]|end\b|fi\b|done\b|esac\b|</)")
_COMMENTS = {
    "shell": "#",
    "yaml": "#",
    "toml": "#",
    "ruby": "#",
    PYTHON: "#",
    "sql": "--",
}


def _bracket_delta(line: str) -> int:
    code = _STRING.sub("", line)
    return code.count("(") + code.count("[") - code.count(")") - code.count("]")


def _indent_structure(lines: list[str], language: str) -> Structure:
    comment = _COMMENTS.get(language, "//" if language not in (TEXT, "markdown") else None)
    units: list[Unit] = []
    widths: list[int] = []
    i = 0
    n = len(lines)
    while i < n:
        if not lines[i].strip():
            i += 1
            continue
        start = i
        depth = _bracket_delta(lines[i])
        # Continuation lines of an open ( or [ belong to the same unit (bounded, in case
        # the brackets never balance, e.g. in prose).
        while depth > 0 and i + 1 < n and i + 1 - start < 50:
            i += 1
            depth += _bracket_delta(lines[i])
        units.append(Unit(start=start, end=i))
        widths.append(_indent_width(lines[start]))
        i += 1
    # Parents by indentation; closers pair with the opener at the same indentation.
    stack: list[int] = []
    for index, unit in enumerate(units):
        width = widths[index]
        popped_deeper = False
        while stack and widths[stack[-1]] > width:
            stack.pop()
            popped_deeper = True
        if _CLOSER.match(lines[unit.start]) and popped_deeper and stack:
            opener = stack.pop()
            if widths[opener] == width:
                units[opener].deps.append(index)
                unit.deps.append(opener)
                stack.append(index)
                continue
            stack.append(opener)
        while stack and widths[stack[-1]] >= width:
            stack.pop()
        if stack:
            unit.deps.append(stack[-1])
        stack.append(index)
    return _finish(lines, units, language, builder=INDENTATION, comment=comment)


def _finish(
    lines: list[str], units: list[Unit], language: str, *, builder: str, comment: str | None
) -> Structure:
    """Merge units that share lines, add free units for uncovered lines, index by line."""
    n = len(lines)
    parent = list(range(len(units)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner = [-1] * n
    for index, unit in enumerate(units):
        for line in range(unit.start, unit.end + 1):
            if owner[line] == -1:
                owner[line] = index
            else:
                parent[find(index)] = find(owner[line])
    # Merged groups: one unit each.
    groups: dict[int, list[int]] = {}
    for index in range(len(units)):
        groups.setdefault(find(index), []).append(index)
    merged_of: dict[int, int] = {}
    merged: list[Unit] = []
    for root, members in sorted(groups.items(), key=lambda kv: units[kv[0]].start):
        del root
        first = units[members[0]]
        unit = Unit(
            start=min(units[m].start for m in members),
            end=max(units[m].end for m in members),
            header=len(members) == 1 and first.header,
            body_start=first.body_start,
            body_end=first.body_end,
            body_indent=first.body_indent,
        )
        for m in members:
            merged_of[m] = len(merged)
        merged.append(unit)
    for index, unit in enumerate(units):
        target = merged[merged_of[index]]
        for dep in unit.deps:
            mapped = merged_of[dep]
            if mapped != merged_of[index] and mapped not in target.deps:
                target.deps.append(mapped)
    # Lines no unit covers: blank lines, comments, anything else becomes its own unit.
    covered = [False] * n
    for unit in merged:
        for line in range(unit.start, unit.end + 1):
            covered[line] = True
    for line in range(n):
        if not covered[line]:
            merged.append(Unit(start=line, end=line, free=_is_free_line(lines[line], comment)))
    order = sorted(range(len(merged)), key=lambda k: merged[k].start)
    rank = {old: new for new, old in enumerate(order)}
    final = [merged[k] for k in order]
    for unit in final:
        unit.deps = sorted({rank[d] for d in unit.deps})
    line_unit = [0] * n
    for index, unit in enumerate(final):
        for line in range(unit.start, unit.end + 1):
            line_unit[line] = index
    return Structure(language=language, units=final, line_unit=line_unit, builder=builder)
