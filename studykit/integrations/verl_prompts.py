"""How long each exported prompt is in verl's tokens, so `data.max_prompt_length` covers every row.

verl 0.9.1 renders a row's `prompt` messages with the model's chat template (`apply_chat_template(...,
add_generation_prompt=True, tokenize=True)`, as `RLHFDataset.maybe_filter_out_long_prompts` and the agent loop do).
With `data.filter_overlong_prompts=True` it drops longer rows from training and validation alike; with False its
agent loop left-truncates them (`_cap_text_prompt_length`, a warning). The export therefore measures every row
and sets the limit above the longest, so neither happens:

- with the model's tokenizer when it loads without the network (a local folder, or the Hugging Face cache), by
  the same call verl makes: exact. A tokenizer without a chat template is refused (verl's call would fail);
- otherwise by a stated estimate, `ceil(characters / 3) + 64` per row (about 4 characters per token in English
  text, plus the template's role markers and default system prompt). The manifest and the launch script's
  departures say so: a row that really is longer would be left-truncated by verl with that warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS = 64
ROUND_TO = 128


@dataclass
class PromptLengths:
    train: list[int]
    val: list[int]
    method: str
    exact: bool

    @property
    def longest(self) -> int:
        return max(self.train + self.val)

    def limit(self) -> int:
        """The smallest multiple of ROUND_TO that holds every row."""
        return ROUND_TO * math.ceil(self.longest / ROUND_TO)

    def over(self, limit: int) -> tuple[int, int]:
        """(training rows, evaluation rows) longer than `limit`."""
        return sum(n > limit for n in self.train), sum(n > limit for n in self.val)

    def manifest(self, limit: int) -> dict:
        return {"method": self.method, "exact": self.exact, "longest_train": max(self.train),
                "longest_val": max(self.val, default=0), "max_prompt_length": limit,
                "rows_over_limit": sum(self.over(limit))}


def offline_tokenizer(name: str):
    """The model's tokenizer from a local folder or the Hugging Face cache (never the network), else None."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached / not a tokenizer folder: the estimate is used and stated
        return None


def estimate(messages: list[dict]) -> int:
    return math.ceil(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS


def measure(model: str, train_rows: list[dict], val_rows: list[dict]) -> PromptLengths:
    """Every row's prompt length in tokens (module docstring); ValueError for a tokenizer without chat template."""
    tok = offline_tokenizer(model)
    if tok is None:
        how = (f"estimate: ceil(characters / {CHARS_PER_TOKEN}) + {TEMPLATE_TOKENS} per prompt (no tokenizer for "
               f"{model!r} without the network)")
        return PromptLengths([estimate(r["prompt"]) for r in train_rows], [estimate(r["prompt"]) for r in val_rows],
                             how, exact=False)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"model.name {model!r}: its tokenizer has no chat template, and verl renders every prompt "
                         "with one (apply_chat_template); use a model whose tokenizer has one")

    def count(row: dict) -> int:
        ids = tok.apply_chat_template(list(row["prompt"]), add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids  # a BatchEncoding (transformers 5) or a list
        return len(ids)

    return PromptLengths([count(r) for r in train_rows], [count(r) for r in val_rows],
                         f"tokenizer of {model!r} with its chat template (as verl renders prompts)", exact=True)
