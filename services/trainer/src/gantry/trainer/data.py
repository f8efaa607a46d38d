"""SFT data: chat JSONL -> token ids with assistant-only labels, in a resumable order.

The sequence trained for turn t is exactly what rollout feeds the policy at turn t: the
prompt of turn t is `apply_chat_template(system + history, add_generation_prompt=True)`
(rollout's `context.fit_history` with unbounded history) and the target is the assistant
message's tokens up to and including the end-of-turn token. Text parts of a user message
are joined with "\\n", the way rollout joins "Feedback: ..." and the observation text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from gantry.core.errors import PermissionDenied, echo
from gantry.trainer.paths import inside

IGNORE = -100  # label of tokens that carry no loss
DATASET_FIELD = "config.data.dataset_uri"
Message = dict[str, str]


class DataError(ValueError):
    """The dataset cannot be used; `field` names the request field to blame."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss; same length as input_ids

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DataError(DATASET_FIELD, f"{where}: content must be text or parts")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in ("image", "video"):
            raise DataError(
                DATASET_FIELD,
                f"{where}.content[{j}] is an {kind} part; this trainer trains text models "
                "(export with --mode text)",
            )
        else:
            raise DataError(DATASET_FIELD, f"{where}.content[{j}]: unknown part")
    return "\n".join(texts)


def text_messages(raw: Any, where: str) -> list[Message]:
    """Validate one record's messages and flatten text parts to strings."""
    if not isinstance(raw, list) or not raw:
        raise DataError(DATASET_FIELD, f"{where}: 'messages' must be a list")
    messages = []
    for i, message in enumerate(raw):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "user", "assistant", "tool"):
            raise DataError(DATASET_FIELD, f"{where}.messages[{i}]: bad role")
        messages.append({"role": role, "content": _text(message.get("content"), where)})
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(DATASET_FIELD, f"{where}: no assistant message")
    return messages


def dataset_files(path: Path, *, root: Path | None = None) -> list[Path]:
    """The JSONL file `path`, or every *.jsonl below the folder `path` (sorted).

    With `root`, a folder is walked without following symlinked folders, and a file
    whose real path lies outside `root` (a symlink out) is PERMISSION_DENIED.
    """
    if not path.is_dir():
        return [path]
    files = []
    for folder, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
            if name.endswith(".jsonl"):
                file = Path(folder) / name
                if root is not None and not inside(file, root):
                    raise PermissionDenied(
                        f"{DATASET_FIELD}: {echo(str(file.relative_to(path)))} links outside "
                        "the datasets root",
                        reason="PATH_OUTSIDE_ROOT",
                        metadata={"field": DATASET_FIELD, "kind": "datasets"},
                    )
                files.append(file)
    return sorted(files)


def read_conversations(
    uri: str | Path, *, root: Path | None = None, max_bytes: int | None = None
) -> list[list[Message]]:
    """All conversations of a JSONL file, or of every *.jsonl in a directory (sorted).

    `root` keeps a directory walk inside the datasets root; `max_bytes` caps the total
    size, checked before anything is read.
    """
    path = uri if isinstance(uri, Path) else Path(uri.removeprefix("file://"))
    files = dataset_files(path, root=root)
    if not files or not all(f.is_file() for f in files):
        raise DataError(DATASET_FIELD, f"no JSONL data at {echo(str(uri))}")
    if max_bytes is not None:
        total = sum(f.stat().st_size for f in files)
        if total > max_bytes:
            raise DataError(
                DATASET_FIELD, f"the dataset is {total} bytes; the limit is {max_bytes}"
            )
    conversations = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(DATASET_FIELD, f"{echo(file.name)} is not UTF-8 text") from exc
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
                raise DataError(DATASET_FIELD, f"{echo(file.name)}:{n}: {why}") from exc
            if not isinstance(record, dict):
                raise DataError(DATASET_FIELD, f"{echo(file.name)}:{n}: not an object")
            conversations.append(text_messages(record.get("messages"), f"{file.name}:{n}"))
    if not conversations:
        raise DataError(DATASET_FIELD, f"{echo(str(uri))} holds no examples")
    return conversations


def chat_ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], *, generation_prompt: bool
) -> list[int]:
    rendered: Any = tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation_prompt, tokenize=True
    )
    ids = rendered["input_ids"] if hasattr(rendered, "keys") else rendered
    return [int(t) for t in ids]


def _target(span: list[int], end_ids: set[int]) -> int:
    """How many tokens of an assistant span to learn: through the end-of-turn token."""
    for i, token in enumerate(span):
        if token in end_ids:
            return i + 1
    return len(span)


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    *,
    assistant_only: bool = True,
) -> list[Example]:
    """One example for the whole conversation when the template renders turn prompts as
    prefixes of each other (the usual case); otherwise one example per assistant turn."""
    end_ids = {int(t) for t in _end_ids(tokenizer)}
    turns: list[tuple[list[int], list[int]]] = []  # (prompt of turn t, full through turn t)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = chat_ids(tokenizer, messages[:i], generation_prompt=True)
        full = chat_ids(tokenizer, messages[: i + 1], generation_prompt=False)
        if full[: len(prompt)] != prompt:
            raise DataError(
                "config.base_model",
                "the chat template does not render the assistant turn after its prompt",
            )
        turns.append((prompt, full))
    chained = all(turns[k + 1][0][: len(turns[k][1])] == turns[k][1] for k in range(len(turns) - 1))
    if chained:
        ids = turns[-1][1]
        labels = list(ids) if not assistant_only else [IGNORE] * len(ids)
        if assistant_only:
            for prompt, full in turns:
                n = _target(full[len(prompt) :], end_ids)
                labels[len(prompt) : len(prompt) + n] = full[len(prompt) : len(prompt) + n]
        return [Example(ids, labels)]
    examples = []
    for prompt, full in turns:
        n = _target(full[len(prompt) :], end_ids)
        ids = full[: len(prompt) + n]
        labels = list(ids) if not assistant_only else [IGNORE] * len(prompt) + ids[len(prompt) :]
        examples.append(Example(ids, labels))
    return examples


def _end_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = []
    for token in (tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        if isinstance(token, str):
            found = tokenizer.convert_tokens_to_ids(token)
            if isinstance(found, int) and found != tokenizer.unk_token_id:
                ids.append(found)
    return ids


def truncate(example: Example, max_seq_len: int) -> Example | None:
    """Keep the first max_seq_len tokens; drop examples left without targets."""
    cut = Example(example.input_ids[:max_seq_len], example.labels[:max_seq_len])
    # The first label never counts (nothing predicts it), so require one after it.
    return cut if any(label != IGNORE for label in cut.labels[1:]) else None


def pack(examples: Sequence[Example], max_seq_len: int) -> list[Example]:
    """Concatenate consecutive examples into sequences of at most max_seq_len tokens.

    Packed examples attend to their predecessors in the same sequence (no block-diagonal
    mask on the CPU attention path); labels stay per example.
    """
    packed: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    for example in examples:
        if ids and len(ids) + len(example.input_ids) > max_seq_len:
            packed.append(Example(ids, labels))
            ids, labels = [], []
        ids = ids + example.input_ids
        labels = [*labels, IGNORE, *example.labels[1:]]  # no loss across the boundary
    if ids:
        packed.append(Example(ids, labels))
    return packed


def build_examples(
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[list[Message]],
    *,
    max_seq_len: int,
    assistant_only: bool,
    packing: bool,
) -> list[Example]:
    examples = []
    for messages in conversations:
        for example in tokenize_conversation(tokenizer, messages, assistant_only=assistant_only):
            cut = truncate(example, max_seq_len)
            if cut is not None:
                examples.append(cut)
    if not examples:
        raise DataError("config.max_seq_len", f"no example has a target within {max_seq_len}")
    return pack(examples, max_seq_len) if packing else examples


class DataOrder:
    """A seeded shuffle per epoch; `cursor` (examples consumed so far) is the whole state."""

    def __init__(self, size: int, seed: int, cursor: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.cursor = cursor
        self._epoch = -1
        self._perm: list[int] = []

    def _permutation(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            # Modulo 2**63: any uint64 seed works (identical to before for smaller seeds).
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._perm = torch.randperm(self.size, generator=generator).tolist()
            self._epoch = epoch
        return self._perm

    def take(self, count: int) -> list[int]:
        indices = []
        for _ in range(count):
            epoch, offset = divmod(self.cursor, self.size)
            indices.append(self._permutation(epoch)[offset])
            self.cursor += 1
        return indices


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels tensors."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
