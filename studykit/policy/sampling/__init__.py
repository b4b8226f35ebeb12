"""Samplers: draw n completions per prompt from the current policy, with the log-prob of every sampled token.

Two backends share one protocol (`Sampler`) and one result type (`Group`), and a third kind wraps one of them:

* `"hf"`  (`HFSampler`, studykit/policy/sampling/hf.py): batched `model.generate` on the training model itself, so
  it needs no weight sync. Runs everywhere (the CPU toy world, CI).
* `"vllm"` (`VLLMSampler`, studykit/policy/sampling/vllm_backend.py): a vLLM engine over the frozen base weights with
  the policy's LoRA adapter saved and swapped in after every optimiser step under a fresh adapter id.
* `"power"` (`PowerSampler`, studykit/policy/sampling/power.py): the base model's power distribution p^alpha by
  Metropolis-Hastings over the hf or the vllm backend (Karan & Du 2025; option `base`). Evaluation-only: its
  `Group.logprobs` are the base model's per-token log-probs of the returned response, not of a distribution it
  sampled from (see its docstring).

Log-prob convention (both backends, identical to vLLM's `logprobs_mode="processed_logprobs"`):
`log_softmax(logits / T)` after top-p masking, i.e. the distribution that was actually sampled from
(top-p renormalisation *included*). With `top_p = 1` (the paper's recipe) this equals the trainer's
teacher-forced `log_softmax(logits / T)`. Greedy decoding (`temperature == 0`) reports `log_softmax(logits)`
(temperature 1), again as vLLM does. The paper's verl stack recomputes old log-probs with a forward pass
instead of trusting the sampler's; studykit returns them so the trainer may do either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studykit.policy.sampling.base import Group, Sampler, check_generate_args, prompt_token_ids

if TYPE_CHECKING:  # models.py is optional at import time: samplers only duck-type the policy
    from studykit.policy.models import Policy

__all__ = ["Group", "Sampler", "make_sampler", "check_generate_args", "prompt_token_ids", "SAMPLER_KINDS"]

SAMPLER_KINDS = ("hf", "vllm", "power")


def make_sampler(kind: str, policy: "Policy", **options: Any) -> Sampler:
    """A sampler of the given kind ("hf" | "vllm" | "power") over `policy`; options go to the backend's constructor."""
    if kind == "hf":
        from studykit.policy.sampling.hf import HFSampler

        return HFSampler(policy, **options)
    if kind == "vllm":
        from studykit.policy.sampling.vllm_backend import VLLMSampler

        return VLLMSampler(policy, **options)
    if kind == "power":
        from studykit.policy.sampling.power import PowerSampler

        return PowerSampler(policy, **options)
    raise ValueError(f"sampler kind: expected one of {list(SAMPLER_KINDS)}, got {kind!r}")
