"""Train small tokenizers locally with `tokenizers` and wrap them for transformers.

Nothing here touches the network: the tokenizers are learned from text passed in (by
default the built-in corpus), so tests and the local stack never need a Hub download.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from gantry.models.tiny.corpus import CORPUS

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<|pad|>"
# Qwen-VL style markers: present in every tiny tokenizer so the causal LM and the VLM
# share one vocabulary (as real Qwen checkpoints do).
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"

SPECIAL_TOKENS: tuple[str, ...] = (
    ENDOFTEXT,
    IM_START,
    IM_END,
    PAD,
    VISION_START,
    VISION_END,
    IMAGE_PAD,
    VIDEO_PAD,
)

# ChatML, as Qwen models use it. String content renders verbatim; list content (the
# multimodal form processors pass) renders text parts and an image/video placeholder.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

DEFAULT_VOCAB_SIZE = 1024


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of a single known token; raises instead of silently returning ``unk``."""
    value = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(value, int) or tokenizer.convert_ids_to_tokens(value) != token:
        raise KeyError(f"token {token!r} is not in the vocabulary")
    return value


def train_bpe_tokenizer(
    corpus: Iterable[str] = CORPUS, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (GPT-2/Qwen style) and wrap it with ChatML special tokens.

    Byte-level means any string round-trips, even characters absent from the corpus.
    The result may have fewer than ``vocab_size`` entries if the corpus runs out of merges.
    """
    if vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size must exceed the byte alphabet plus specials, got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    # Digits split one by one, as Qwen's pre-tokenizer does: a number is spelled the same
    # wherever it appears, which a small policy needs to copy coordinates and counts.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[*SPECIAL_TOKENS[4:], ENDOFTEXT, IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
        padding_side="left",  # decoder-only batches generate from the right edge
        clean_up_tokenization_spaces=False,
    )


def train_wordpiece_tokenizer(
    corpus: Iterable[str] = CORPUS, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> PreTrainedTokenizerFast:
    """Train a lower-cased BERT-style WordPiece tokenizer with ``[CLS] ... [SEP]`` framing."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
        clean_up_tokenization_spaces=False,
    )
