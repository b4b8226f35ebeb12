"""The toy world: tiny Llama models pretrained locally on a synthetic verifiable task (sum five digits),
with the pretraining corpus as a controlled alignment dial.

Public API: `ensure_built(name, **knobs) -> Path`, `load(name, **knobs) -> (model, tokenizer)`,
`ToyRecipe`, `PRESETS`, `recipe_for`, `build_tokenizer`, `alignment_report` (in `studykit.toy.evaluate`),
and the CLI hook `add_toy_parser` (in `studykit.toy.cli`). Not in the paper: the paper compares real
pretrained LLMs; the toy world sets alignment directly, so claims can be checked on a laptop CPU.
"""

from .cache import cache_root, ensure_built, is_valid, load
from .presets import NAMES, PRESETS, ToyRecipe, recipe_for
from .tokenizer import build_tokenizer

__all__ = [
    "NAMES", "PRESETS", "ToyRecipe", "build_tokenizer", "cache_root", "ensure_built", "is_valid", "load", "recipe_for",
]
