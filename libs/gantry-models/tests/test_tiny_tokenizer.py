from __future__ import annotations

from typing import Any

import pytest
from transformers import BatchEncoding, PreTrainedTokenizerFast

from gantry.models.tiny import SPECIAL_TOKENS, train_bpe_tokenizer, train_wordpiece_tokenizer
from gantry.models.tiny.tokenizer import IM_END, IM_START, PAD, token_id


def _ids(tok: PreTrainedTokenizerFast, text: str) -> list[int]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert isinstance(ids, list)
    return [int(i) for i in ids]


def _render(tok: PreTrainedTokenizerFast, messages: list[dict[str, Any]], **kw: Any) -> str:
    text = tok.apply_chat_template(messages, tokenize=False, **kw)
    assert isinstance(text, str)
    return text


@pytest.fixture(scope="module")
def bpe() -> PreTrainedTokenizerFast:
    return train_bpe_tokenizer()


@pytest.mark.parametrize(
    "text",
    [
        "The river was low that summer.",
        "def f(x: int) -> int:\n    return x * 2\n",
        "Ünïcödé, 日本語, emoji 🚀 and tabs\tall round-trip",
        '{"name": "run_shell", "arguments": {"command": "ls -1"}}',
    ],
)
def test_bpe_round_trips_text(bpe: PreTrainedTokenizerFast, text: str) -> None:
    assert bpe.decode(_ids(bpe, text)) == text


def test_bpe_learned_merges_compress_corpus_text(bpe: PreTrainedTokenizerFast) -> None:
    text = "The library kept its oldest books in a cold room."
    assert len(bpe(text)["input_ids"]) < len(text.encode()) / 2


def test_bpe_vocab_size_and_special_tokens(bpe: PreTrainedTokenizerFast) -> None:
    assert len(bpe) == 1024
    ids = [token_id(bpe, tok) for tok in SPECIAL_TOKENS]
    assert len(set(ids)) == len(SPECIAL_TOKENS)
    for token, expected in zip(SPECIAL_TOKENS, ids, strict=True):
        assert _ids(bpe, token) == [expected]
    assert bpe.eos_token == IM_END
    assert bpe.pad_token == PAD
    assert bpe.decode(ids, skip_special_tokens=True) == ""


def test_token_id_rejects_unknown_tokens(bpe: PreTrainedTokenizerFast) -> None:
    with pytest.raises(KeyError, match="not in the vocabulary"):
        token_id(bpe, "<|no_such_token|>")


def test_bpe_respects_requested_vocab_size() -> None:
    assert len(train_bpe_tokenizer(vocab_size=400)) == 400
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe_tokenizer(vocab_size=100)


def test_bpe_training_is_deterministic(bpe: PreTrainedTokenizerFast) -> None:
    again = train_bpe_tokenizer()
    assert again.backend_tokenizer.to_str() == bpe.backend_tokenizer.to_str()


def test_bpe_trains_on_custom_corpus() -> None:
    tok = train_bpe_tokenizer(["zebra quagga zebra quagga okapi"] * 3, vocab_size=300)
    assert tok.tokenize("zebra") == ["zebra"]


def test_chat_template_renders_chatml(bpe: PreTrainedTokenizerFast) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
    ]
    text = _render(bpe, messages, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    no_prompt = _render(bpe, messages)
    assert not no_prompt.endswith("assistant\n")
    encoding = bpe.apply_chat_template(messages, add_generation_prompt=True)
    assert isinstance(encoding, BatchEncoding)
    ids = encoding["input_ids"]
    assert ids[0] == token_id(bpe, IM_START)
    assert bpe.decode(ids) == text


def test_chat_template_renders_image_parts(bpe: PreTrainedTokenizerFast) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}
    ]
    text = _render(bpe, messages)
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is it?<|im_end|>\n"
    )


def test_wordpiece_frames_with_cls_and_sep() -> None:
    tok = train_wordpiece_tokenizer()
    ids = tok("The River")["input_ids"]
    assert ids[0] == tok.cls_token_id
    assert ids[-1] == tok.sep_token_id
    assert tok.decode(ids, skip_special_tokens=True) == "the river"
