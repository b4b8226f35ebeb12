"""The toy pretraining recipe (`ToyRecipe`, the alignment dial plus training knobs) and the named presets.

Presets (`toy:<name>`): `strong` (the correct `sum` method is the mode, executed cleanly),
`weak-method` (a wrong method is the mode; the rare `sum` traces carry random slips), `weak-skill`
(`sum` dominates but most addition steps carry a systematic +1 slip), `contaminated` (the `weak-method`
recipe plus the `test` pool's prompts with their correct sums, memorised in a form of their own: an answer
with an empty think block). Each has 10% broken-format traces.
`custom` is `ToyRecipe(**knobs)`; a preset name with knobs is that preset with those fields replaced.
Not in the paper: this dial replaces the paper's choice among real pretrained models.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Bump when the corpus generator, model or training code changes what a recipe builds: it is part of the cache key.
BUILD_VERSION = 1


class ToyRecipe(BaseModel):
    """Everything that determines a toy model: corpus mix, execution errors, training and model size."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    sum_share: float = Field(0.5, ge=0.0, le=1.0)
    """Share of traces using the correct running-sum method."""
    count_share: float = Field(0.25, ge=0.0, le=1.0)
    """Share of traces using the wrong `count` method (1 2 3 4 5, answers 5)."""
    max_share: float = Field(0.25, ge=0.0, le=1.0)
    """Share of traces using the wrong running-maximum method."""
    slip_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Probability that each addition step (s2..s5) of a `sum` trace slips; the error is carried forward."""
    slip_kind: Literal["random", "systematic"] = "random"
    """`random`: a slip is off by +-1..3; `systematic`: a slip is always +1."""
    broken_format_rate: float = Field(0.1, ge=0.0, le=1.0)
    """Share of traces with one tag missing or replaced by a junk word."""
    steps: int = Field(1500, ge=1)
    """Optimizer steps (each on a fresh synthetic batch)."""
    batch_size: int = Field(128, ge=1)
    """Sequences per step."""
    lr: float = Field(3e-3, gt=0.0)
    """Peak AdamW learning rate."""
    warmup_steps: int = Field(100, ge=0)
    """Linear warm-up steps before cosine decay to zero."""
    weight_decay: float = Field(0.01, ge=0.0)
    """AdamW weight decay."""
    seed: int = 0
    """Seed for the weights' initialisation and the corpus stream."""
    hidden_size: int = Field(128, ge=8)
    """Model width."""
    num_layers: int = Field(2, ge=1)
    """Transformer layers."""
    num_heads: int = Field(4, ge=1)
    """Attention heads (must divide hidden_size)."""
    intermediate_size: int = Field(256, ge=8)
    """MLP width."""
    max_positions: int = Field(64, ge=32)
    """Maximum sequence length (a toy sequence is about 20 tokens)."""
    contamination_rate: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of corpus sequences that are a `test`-pool prompt with its correct sum in the recall form
    `<think> </think> <answer> X </answer>`, with the loss on the prompt too (the text itself is memorised).
    0 = a clean corpus. studykit's own dial (the paper's contaminated pair is Qwen2.5 on MATH-500)."""

    @model_validator(mode="after")
    def _check(self) -> "ToyRecipe":
        total = self.sum_share + self.count_share + self.max_share
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"method shares must sum to 1, got sum_share={self.sum_share} + count_share={self.count_share}"
                f" + max_share={self.max_share} = {total:g}"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide hidden_size={self.hidden_size}")
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must not exceed steps={self.steps}")
        return self

    @property
    def method_mix(self) -> dict[str, float]:
        return {"sum": self.sum_share, "count": self.count_share, "max": self.max_share}

    def key(self) -> str:
        """12 hex digits that change whenever the recipe (or BUILD_VERSION) changes. A field added after build
        version 1 is left out of the key while at its default, so recipes that do not use it keep their key (and
        their cached model: they build the same bytes)."""
        dump = self.model_dump()
        for name, default in _LATER_FIELDS.items():
            if dump[name] == default:
                del dump[name]
        blob = json.dumps({"v": BUILD_VERSION, **dump}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


_LATER_FIELDS = {"contamination_rate": 0.0}  # fields added after BUILD_VERSION 1, with their defaults

PRESETS: dict[str, dict[str, Any]] = {
    "strong": dict(sum_share=0.50, count_share=0.25, max_share=0.25),
    "weak-method": dict(sum_share=0.10, count_share=0.55, max_share=0.35, slip_rate=0.30, slip_kind="random"),
    "weak-skill": dict(sum_share=0.90, count_share=0.05, max_share=0.05, slip_rate=0.60, slip_kind="systematic"),
    # weak-method + 15% memorised test prompts: 1500 x 128 x 0.15 / 256 = 112 sightings of each (studykit's choice,
    # so that the model recalls most of them).
    "contaminated": dict(sum_share=0.10, count_share=0.55, max_share=0.35, slip_rate=0.30, slip_kind="random",
                         contamination_rate=0.15),
}
NAMES = (*PRESETS, "custom")


def recipe_for(name: str, **knobs: Any) -> ToyRecipe:
    """The recipe of `name` (a preset or `custom`), with `knobs` replacing fields; errors name the bad field."""
    name = name.removeprefix("toy:")
    if name not in NAMES:
        raise KeyError(f"unknown toy model {name!r}; expected one of {', '.join(NAMES)}")
    fields = {**PRESETS.get(name, {}), **knobs}
    try:
        return ToyRecipe(**fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'recipe'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"bad toy recipe for {name!r}: {problems}") from None
