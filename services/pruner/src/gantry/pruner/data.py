"""Training/evaluation examples from real Python source: (file, goal hint, relevant lines).

For each source file (by default the installed standard library) the generator picks
functions of 6-80 lines and makes two kinds of goal hints:

- *docstring*: the first paragraph of the function's docstring. The docstrings of the
  chosen functions are removed from the context, so the hint must be matched to the code
  that implements it, not to its own text.
- *call*: a line elsewhere in the file that calls the function, e.g. "what does
  `self._parse_header(line)` do?".

The relevant lines are the function's non-blank lines (decorators and signature through
its last line) in the context. The split is by file (a hash of the path), so no file
contributes to both train and held-out examples.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = frozenset(
    {
        "test",
        "tests",
        "idlelib",
        "lib2to3",
        "site-packages",
        "turtledemo",
        "__pycache__",
        "ensurepip",
        "dist-packages",
        "pydoc_data",
    }
)
DOC_TEMPLATES = ("{doc}", "focus on the code that does this: {doc}", "where is this done? {doc}")
CALL_TEMPLATES = (
    "what does `{call}` do?",
    "focus on the implementation behind `{call}`",
    "how does this call work: {call}",
)


@dataclass(slots=True)
class Example:
    hint: str
    relevant: list[int]  # 0-based line indices into the file context
    kind: str  # "docstring" or "call"
    function: str


@dataclass(slots=True)
class FileContext:
    path: str  # relative to the source root
    lines: list[str]
    examples: list[Example] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def held_out(path: str, share: int = 5) -> bool:
    """One file in ``share`` (by a hash of its relative path) is held out."""
    return int(hashlib.sha1(path.encode()).hexdigest()[:8], 16) % share == 0


def source_files(root: Path | None = None) -> list[Path]:
    base = root or Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(base.rglob("*.py")):
        if SKIP_DIRS.intersection(path.relative_to(base).parts[:-1]):
            continue
        out.append(path)
    return out


def _doc_paragraph(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    doc = ast.get_docstring(node)
    if not doc:
        return None
    first = re.split(r"\n\s*\n", doc.strip())[0]
    first = " ".join(first.split())
    if len(first.split()) < 5:
        return None
    return first[:240]


def build_file(
    path: Path,
    root: Path,
    rng: random.Random,
    *,
    max_examples: int = 6,
    min_lines: int = 60,
    max_lines: int = 600,
) -> FileContext | None:
    """Examples from one file, or None when it is unusable (size, syntax, no functions)."""
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    lines = source.split("\n")
    if not (min_lines <= len(lines) <= max_lines):
        return None
    functions = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and 6 <= (n.end_lineno or n.lineno) - n.lineno + 1 <= 80
    ]
    names: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.name] = names.get(node.name, 0) + 1
    functions = [f for f in functions if names[f.name] == 1]  # unambiguous targets only
    rng.shuffle(functions)
    chosen = functions[:max_examples]
    if not chosen:
        return None
    # Remove the chosen functions' docstrings (when the body goes on after them).
    drop: set[int] = set()
    docs: dict[str, str] = {}
    for f in chosen:
        paragraph = _doc_paragraph(f)
        first = f.body[0]
        if (
            paragraph
            and len(f.body) > 1
            and isinstance(first, ast.Expr)
            and first.lineno > f.lineno
        ):
            docs[f.name] = paragraph
            drop.update(range(first.lineno - 1, (first.end_lineno or first.lineno)))
    new_index: dict[int, int] = {}
    kept: list[str] = []
    for i, line in enumerate(lines):
        if i not in drop:
            new_index[i] = len(kept)
            kept.append(line)
    context = FileContext(path=str(path.relative_to(root)), lines=kept)
    calls = _call_sites(tree, lines)
    for f in chosen:
        start = min([f.lineno] + [d.lineno for d in f.decorator_list]) - 1
        end = (f.end_lineno or f.lineno) - 1
        relevant = [new_index[i] for i in range(start, end + 1) if i in new_index]
        relevant = [i for i in relevant if kept[i].strip()]
        if f.name in docs:
            template = rng.choice(DOC_TEMPLATES)
            context.examples.append(
                Example(template.format(doc=docs[f.name]), relevant, "docstring", f.name)
            )
        sites = [line for line, name in calls if name == f.name and not start <= line <= end]
        if sites:
            call = lines[rng.choice(sites)].strip()[:160]
            template = rng.choice(CALL_TEMPLATES)
            context.examples.append(Example(template.format(call=call), relevant, "call", f.name))
    return context if context.examples else None


def _call_sites(tree: ast.AST, lines: list[str]) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if name and node.lineno == (node.end_lineno or node.lineno):
                out.append((node.lineno - 1, name))
    return out


def generate(
    *,
    split: str,
    max_files: int,
    seed: int = 0,
    root: Path | None = None,
    max_examples: int = 6,
) -> Iterator[FileContext]:
    """File contexts of ``split`` ("train" or "test"), deterministic for a seed."""
    base = root or Path(sysconfig.get_paths()["stdlib"])
    rng = random.Random(seed)
    files = source_files(base)
    rng.shuffle(files)
    produced = 0
    for path in files:
        if produced >= max_files:
            return
        if held_out(str(path.relative_to(base))) != (split == "test"):
            continue
        built = build_file(
            path, base, random.Random(f"{seed}:{path.name}"), max_examples=max_examples
        )
        if built is not None:
            produced += 1
            yield built
