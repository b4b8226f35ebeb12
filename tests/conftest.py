"""Shared pytest fixtures: a tiny Llama + word-level tokenizer saved to a temporary folder.

`tiny_model_dir` is session scoped and builds in well under two seconds: a LlamaForCausalLM
(hidden 64, 2 layers, 4 heads) over a WordLevel `PreTrainedTokenizerFast` whose vocabulary holds the
special tokens, digits 0-9, the think/answer tags and a few words. Left padding, bos/eos/pad/unk set;
encoding adds `<bos>` in front. Both are written with `save_pretrained`, so any code that loads a
local folder (`studykit.policy.models.load_policy`, the samplers) can use it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

TINY_SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
TINY_WORDS = (
    *TINY_SPECIALS,
    *(str(d) for d in range(10)),
    "<think>", "</think>", "<answer>", "</answer>",
    "Q", "=", "+", "the", "answer", "is", "sum", "count", "max", "ok", "so",
)


def build_tiny_tokenizer():
    """A small WordLevel fast tokenizer (whitespace split, `<bos>` prepended, left padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(TINY_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
        unk_token="<unk>", padding_side="left", clean_up_tokenization_spaces=False, model_max_length=128,
    )


def build_tiny_model(vocab_size: int, seed: int = 0):
    """A 2-layer LlamaForCausalLM with hidden size 64 and 4 heads (about 0.1 M parameters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder with a tiny LlamaForCausalLM and its tokenizer (both via save_pretrained)."""
    out = tmp_path_factory.mktemp("tiny_llama")
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# A toy model that already does the task sometimes: the correct `sum` method is a minority (25%) and executed
# imperfectly, so ground-truth GRPO has something to find within a few steps. Built once per test session.
LEARNER_KNOBS = dict(steps=400, batch_size=64, sum_share=0.25, count_share=0.5, max_share=0.25, warmup_steps=40,
                     broken_format_rate=0.05)


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory):
    """STUDYKIT_CACHE pointed at a session temp folder (and restored afterwards)."""
    cache = tmp_path_factory.mktemp("studykit_cache")
    old = os.environ.get("STUDYKIT_CACHE")
    os.environ["STUDYKIT_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("STUDYKIT_CACHE", None)
    else:
        os.environ["STUDYKIT_CACHE"] = old


@pytest.fixture(scope="session")
def toy_learner(toy_cache):
    """`toy:custom` knobs of the learnable model above, built into the session cache."""
    from studykit.toy import ensure_built

    ensure_built("custom", progress=False, **LEARNER_KNOBS)
    return dict(LEARNER_KNOBS)
