"""The toy world: tiny Llama models pretrained locally on a synthetic verifiable task (sum five digits),
with the pretraining corpus as a controlled alignment dial.

Public API: `ensure_built(name, **knobs) -> Path`, `load(name, **knobs) -> (model, tokenizer)`,
`ToyRecipe`, `PRESETS`, `recipe_for`, `build_tokenizer`, `alignment_report` (in `studykit.probes.toy_report`),
and the CLI hook `add_toy_parser` (in `studykit.cli.toy`). Not in the paper: the paper compares real
pretrained LLMs; the toy world sets alignment directly, so claims can be checked on a laptop CPU.
`build_tokenizer` is imported on first use, so `studykit.toy.presets` (config validation) never loads transformers.

Layer 2. May import: studykit.infra, studykit.scoring, studykit.tasks (the toy task owns the method names).
"""

from typing import Any

from .cache import cache_root, ensure_built, is_valid, load
from .presets import NAMES, PRESETS, ToyRecipe, recipe_for

__all__ = [
    "NAMES", "PRESETS", "ToyRecipe", "build_tokenizer", "cache_root", "ensure_built", "is_valid", "load", "recipe_for",
]


def __getattr__(name: str) -> Any:
    if name == "build_tokenizer":
        from .tokenizer import build_tokenizer

        return build_tokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
