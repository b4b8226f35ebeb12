"""What every sampler backend shares: the `Group` result, the `Sampler` protocol and argument checks.

A module of its own so that the backends (hf.py, vllm_backend.py) and the package's `make_sampler` import it, and
nothing imports back (see the package docstring for the log-prob convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Group:
    """The n completions of one prompt."""

    prompt: str
    prompt_ids: list[int]
    texts: list[str] = field(default_factory=list)
    """Decoded completions without eos/pad (skip_special_tokens=True)."""
    token_ids: list[list[int]] = field(default_factory=list)
    """Sampled ids, including the eos token if one was produced, no padding."""
    logprobs: list[list[float]] = field(default_factory=list)
    """Log-prob of each sampled token under the sampling distribution (see the module docstring)."""
    truncated: list[bool] = field(default_factory=list)
    """True when max_new_tokens was reached before an eos token."""

    @property
    def n(self) -> int:
        return len(self.texts)


@runtime_checkable
class Sampler(Protocol):
    def generate(
        self,
        prompts: list[str],
        n: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        seed: int | None = None,
    ) -> list[Group]: ...

    def sync(self, policy: Any) -> None: ...  # a studykit.policy.models.Policy, duck-typed: no import of models (the
    # validator in studykit.config.schema reads the backends' signatures, and models sits above config via tracking)

    def sleep(self) -> None:
        """Release accelerator memory before the trainer's update (a no-op where there is nothing to release)."""

    def wake_up(self) -> None:
        """Be ready to generate again after the update."""

    def close(self) -> None: ...


def check_generate_args(prompts: Any, n: Any, temperature: Any, top_p: Any, max_new_tokens: Any) -> None:
    """Raise ValueError naming the argument when a `generate` argument is out of range."""
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts: expected a list of strings, got {type(prompts).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature: expected a number >= 0 (0 = greedy), got {temperature!r}")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a number in (0, 1], got {top_p!r}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected an integer >= 1, got {max_new_tokens!r}")


def prompt_token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of one prompt, adding the tokenizer's special tokens (bos) unless the text already starts
    with the bos token (chat templates often write it themselves; a doubled bos would shift the model)."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and prompt.startswith(bos))
    ids = tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
    if not ids:
        raise ValueError(f"prompt {prompt[:40]!r} encodes to no tokens")
    return list(ids)
