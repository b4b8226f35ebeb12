"""Samplers: draw n completions per prompt from the current policy, with the log-prob of every sampled token.

Two backends share one protocol (`Sampler`) and one result type (`Group`):

* `"hf"`  (`HFSampler`, studykit/sampling/hf.py): batched `model.generate` on the training model itself, so
  it needs no weight sync. Runs everywhere (the CPU toy world, CI).
* `"vllm"` (`VLLMSampler`, studykit/sampling/vllm_backend.py): a vLLM engine over the frozen base weights with
  the policy's LoRA adapter saved and swapped in after every optimiser step under a fresh adapter id.

Log-prob convention (both backends, identical to vLLM's `logprobs_mode="processed_logprobs"`):
`log_softmax(logits / T)` after top-p masking, i.e. the distribution that was actually sampled from
(top-p renormalisation *included*). With `top_p = 1` (the paper's recipe) this equals the trainer's
teacher-forced `log_softmax(logits / T)`. Greedy decoding (`temperature == 0`) reports `log_softmax(logits)`
(temperature 1), again as vLLM does. The paper's verl stack recomputes old log-probs with a forward pass
instead of trusting the sampler's; studykit returns them so the trainer may do either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # models.py is optional at import time: samplers only duck-type the policy
    from studykit.models import Policy

__all__ = ["Group", "Sampler", "make_sampler", "check_generate_args", "prompt_token_ids", "SAMPLER_KINDS"]

SAMPLER_KINDS = ("hf", "vllm")


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

    def sync(self, policy: "Policy") -> None: ...

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


def make_sampler(kind: str, policy: "Policy", **options: Any) -> Sampler:
    """A sampler of the given kind ("hf" | "vllm") over `policy`; options go to the backend's constructor."""
    if kind == "hf":
        from .hf import HFSampler

        return HFSampler(policy, **options)
    if kind == "vllm":
        from .vllm_backend import VLLMSampler

        return VLLMSampler(policy, **options)
    raise ValueError(f"sampler kind: expected one of {list(SAMPLER_KINDS)}, got {kind!r}")
