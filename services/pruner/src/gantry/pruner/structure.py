"""Line structure of a context: the atomic units the selector keeps or drops whole.

A *unit* is a run of lines that must never be cut: a Python statement (a multi-line call,
a triple-quoted string), a block header (decorators + a multi-line signature up to its
colon), or, for other languages, a line plus its bracket continuation lines. Each unit
lists the units it depends on: keeping a body statement keeps the headers that enclose
it, keeping an ``else:``/``except`` clause keeps its ``if``/``try`` header, a ``try:``
keeps its first handler, and for brace languages an opener and its closing line go
together. Python uses the syntax tree; everything else (and Python that does not parse,
or is longer than `MAX_PARSE_CHARS`) uses indentation blocks.
"""

from __future__ import annotations

import ast
import re
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


@dataclass(slots=True)
class Structure:
    language: str
    units: list[Unit]
    line_unit: list[int]
    # The structure came from Python's syntax tree (pruned output stays parseable).
    syntax_tree: bool

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
        built = _python_structure(lines)
        if built is not None:
            return built
    return _indent_structure(lines, language)


# ---- Python: the syntax tree -------------------------------------------------------------


class _PythonBuilder:
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
            if first <= header_start:  # body on the header's line: one unit
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
                    for case in sub_clauses:
                        self.stmt(case, [index])
                else:
                    self.block(body, [index])
            prev_end = last
        if isinstance(node, ast.Try | ast.TryStar) and len(headers) > 1:
            self.units[headers[0]].deps.append(headers[1])  # `try:` needs a handler

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
            cases: list[ast.stmt] = [_CaseStmt(case) for case in node.cases]
            out.append((None, cases, cases))
        return out


def _first_line(node: ast.stmt) -> int:
    """0-based first line of a statement, decorators included."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return min([node.lineno - 1] + [d.lineno - 1 for d in node.decorator_list])
    return node.lineno - 1


class _CaseStmt(ast.stmt):
    """A `case` clause seen as a compound statement (for the builder only)."""

    def __init__(self, case: ast.match_case) -> None:
        super().__init__()
        self.lineno = case.pattern.lineno
        self.end_lineno = max((s.end_lineno or s.lineno) for s in case.body)
        self.col_offset = case.pattern.col_offset
        self.body = case.body


def _python_structure(lines: list[str]) -> Structure | None:
    source = "\n".join(lines)
    if len(source) > MAX_PARSE_CHARS:
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    builder = _PythonBuilder(lines)
    builder.block(tree.body, [])
    return _finish(lines, builder.units, PYTHON, syntax_tree=True, comment="#")


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
    return _finish(lines, units, language, syntax_tree=False, comment=comment)


def _finish(
    lines: list[str], units: list[Unit], language: str, *, syntax_tree: bool, comment: str | None
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
    return Structure(language=language, units=final, line_unit=line_unit, syntax_tree=syntax_tree)
