"""The toy world's word-level tokenizer.

A fixed vocabulary (special tokens, the prompt words `Q` and `=`, the `<think>`/`<answer>` tags, the
method names, the integers 0..45 and a few junk words used by broken-format traces) in a `tokenizers`
WordLevel model with a whitespace-split pre-tokenizer, wrapped in `PreTrainedTokenizerFast`. Encoding a
text adds `<bos>` in front (like a base model's tokenizer), padding is on the left (what batched samplers
need), and decoding joins words with single spaces, so `decode(encode(x), skip_special_tokens=True) == x`
for any single-spaced text over the vocabulary. Not in the paper: the toy world is studykit's own.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from studykit.tasks.toy import METHODS  # the task owns the method names; the vocabulary spells them

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
JUNK_WORDS = ("hmm", "so", "ok", "then", "think", "answer")
MAX_NUMBER = 45
NUMBERS = tuple(str(i) for i in range(MAX_NUMBER + 1))
VOCAB: tuple[str, ...] = (*SPECIAL_TOKENS, "Q", "=", *TAGS, *METHODS, *NUMBERS, *JUNK_WORDS)
TOKEN_ID = {tok: i for i, tok in enumerate(VOCAB)}


def _backend() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(vocab=dict(TOKEN_ID), unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, TOKEN_ID[BOS])]
    )
    return tok


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh toy tokenizer (deterministic: the vocabulary is fixed)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=_backend(),
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=64,
    )


def ids_of(words: list[str]) -> list[int]:
    """Token ids of already-split words (fast path for corpus batches); unknown words are an error."""
    try:
        return [TOKEN_ID[w] for w in words]
    except KeyError as exc:
        raise ValueError(f"word {exc.args[0]!r} is not in the toy vocabulary") from None
