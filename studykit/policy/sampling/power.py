"""Power sampling: completions from the base model's power distribution p^alpha by Metropolis-Hastings, no training.

Karan & Du 2025, "Reasoning with Sampling: Your Base Model is Smarter Than You Think" (arXiv 2510.14901), their
Algorithm 1 as their code (github.com/aakaran/reasoning-with-sampling, `llm_experiments/power_samp_utils.py`,
`mcmc_power_samp`) runs it: the response is built in `blocks` blocks. Each block first extends the current
response with the proposal (the base model at temperature 1/alpha), then runs `mh_steps` Metropolis-Hastings steps:
pick a position i uniformly among the current response's tokens, resample the suffix from i with the proposal,
accept with `log_acceptance` (target p^alpha over proposal q on the two suffixes: the shared prefix cancels). A chain
whose response ends with eos after a block is finished (as their code), so with several blocks the final law is
close to, not exactly, p^alpha over whole responses (each block's chain targets p^alpha over that block's lengths).

Where this departs from their code (each so the chain's stationary law at a block is exactly p^alpha over the
responses of that block's lengths, which `tests/test_power_sampling.py` checks by enumeration):

- a resampled suffix may run to the block's end (their code: to the current response's length, so a response that
  ended early with eos could only be replaced by one as short);
- the ratio compares the whole current suffix with the whole proposed one (their code cuts the current suffix to the
  proposal's length) and carries the position choice's correction |x| / |x'| (1/|x| to pick i from x, 1/|x'| back
  from x'; their code omits it, which is exact only when the two lengths agree);
- block ends are ceil(k * max_new_tokens / blocks) (their code asserts that blocks divides max_new_tokens);
- `temperature` sets the base distribution p = softmax(logits / temperature) (1 in the paper); top-p is refused
  (the proposal must be the tempered model whose probabilities are scored).

Log-probs: every log-prob is a teacher-forced forward pass of the policy model (`HFPowerModel.score`): per token
log p (temperature T) and log q (temperature T/alpha), kept per chain so each MH step scores only the proposal.
`Group.logprobs` of a power sample holds the per-token log p of the returned response under the BASE model at
temperature T (its sum times alpha is the unnormalised log target). It is not the log-prob of any distribution the
tokens were sampled from (the MH chain has no per-token sampling law), so power samples are evaluation-only: the
trainer cannot use them as old log-probs, and `train.sampler` cannot be `power` (studykit.config.training).

Cost: `last_stats` after each `generate` counts the tokens generated (every proposal, accepted or not, and the
block extensions), the answers returned, the proposals made and accepted; the teacher-forced scoring passes are not
counted as generated tokens. Seeded: the MH choices come from numpy's generator on `seed`, and each generate call
of the base sampler gets a seed derived from it, so the same seed gives the same samples.

Backends: `HFPowerModel` (studykit.policy.sampling.power_hf) samples with `model.generate` and scores each proposal
with one teacher-forced pass at T and T/alpha; `VLLMPowerModel` (studykit.policy.sampling.power_vllm) sends each
proposal as a vLLM request on the prompt+prefix ids, so vLLM's prefix caching reuses the prefix's KV blocks, takes
log q from the sampled tokens' log-probs (the exact proposal density) and log p from a teacher-forced pass of the
policy's own model (see that module for why not vLLM's prompt log-probs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from studykit.policy.sampling.base import Group, check_generate_args, prompt_token_ids

ALPHA = 4.0
"""Power of the target p^alpha; the proposal is the base model at temperature 1/alpha (Karan & Du 2025, arXiv
2510.14901: alpha = 4 in their main results, their code's default proposal temperature 0.25)."""
BLOCKS = 16
"""Blocks the response is built in (Karan & Du 2025; their code's `block_num=16`)."""
MH_STEPS = 10
"""Metropolis-Hastings steps per block (Karan & Du 2025's main results, as issue 24 reads them)."""


def log_acceptance(alpha: float, logp_new: Any, logq_new: Any, logp_old: Any, logq_old: Any,
                   n_old: int, n_new: int) -> float:
    """log of the MH ratio [p(x')^alpha q(x_suffix) / |x'|] / [p(x)^alpha q(x'_suffix) / |x|] for replacing the
    current response x (n_old tokens) by x' (n_new tokens) that share the prefix before the resampled position.
    logp_* / logq_*: per-token log-probs of the two suffixes under the base model (temperature T) and the proposal
    (temperature T/alpha); 1/|x| is the probability of picking the position from x (the prefix cancels)."""
    if n_old < 1 or n_new < 1:
        raise ValueError(f"n_old, n_new: expected response lengths >= 1, got {n_old}, {n_new}")
    value = (alpha * (math.fsum(logp_new) - math.fsum(logp_old)) + math.fsum(logq_old) - math.fsum(logq_new)
             + math.log(n_old) - math.log(n_new))
    if math.isnan(value):
        raise ValueError("log_acceptance: a log-prob is NaN (the model's logits are not finite)")
    return value


def accept(log_ratio: float, u: float) -> bool:
    """Metropolis-Hastings: accept with probability min(1, exp(log_ratio)), given u ~ Uniform[0, 1)."""
    return u < math.exp(min(0.0, log_ratio))


def block_ends(max_new_tokens: int, blocks: int) -> list[int]:
    """Response length at the end of each block: ceil(k * max_new_tokens / blocks), k = 1..blocks."""
    return [-(-k * max_new_tokens // blocks) for k in range(1, blocks + 1)]


class PowerModel(Protocol):
    """What the chains need of a model (hf: `HFPowerModel`, vllm: `VLLMPowerModel`)."""

    eos: Any  # a container of eos ids

    def sync(self, policy: Any) -> None:
        """Follow the policy's current weights (beyond the base sampler, which the power sampler syncs)."""
        ...

    def budget(self, prompt_ids: list[int], max_new_tokens: int) -> int:
        """New tokens a response to this prompt may have (the context length caps `max_new_tokens`)."""
        ...

    def propose(self, rows: list[list[int]], caps: list[int], temperature: float, alpha: float, seed: int | None
                ) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """Each row continued by the proposal (temperature `temperature / alpha`, top-p 1) by at most `caps[i]`
        ids, ending after the first eos: (suffix ids, per-token log p at `temperature`, per-token log q under
        the proposal the suffix was drawn from)."""
        ...


@dataclass
class Chain:
    """One MH chain: the prompt's ids and the current response with its per-token log p and log q."""

    prompt: list[int]
    cap: int
    ids: list[int] = field(default_factory=list)
    logp: list[float] = field(default_factory=list)
    logq: list[float] = field(default_factory=list)

    def ended(self, eos: Any) -> bool:
        return bool(self.ids) and self.ids[-1] in eos


@dataclass
class ChainStats:
    tokens_generated: int = 0
    proposals: int = 0
    accepted: int = 0


def _extend(model: PowerModel, chains: list[Chain], cuts: list[int], ends: list[int], temperature: float,
            alpha: float, seed: int | None, stats: ChainStats) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Each chain's prefix `ids[:cut]` continued by the proposal up to length `end`, scored: (suffix, logp, logq)."""
    rows = [c.prompt + c.ids[:cut] for c, cut in zip(chains, cuts)]
    out = model.propose(rows, [e - cut for cut, e in zip(cuts, ends)], temperature, alpha, seed)
    stats.tokens_generated += sum(len(s) for s, _, _ in out)
    return out


def run_chains(model: PowerModel, chains: list[Chain], *, alpha: float, blocks: int, mh_steps: int,
               temperature: float, seed: int | None) -> ChainStats:
    """Advance every chain through all blocks in lockstep (one batched proposal per block and per MH step);
    the chains hold the final responses. The acceptance rule is `log_acceptance` + `accept`."""
    rng = np.random.default_rng(seed)
    stats, calls = ChainStats(), 0

    def call_seed() -> int | None:
        nonlocal calls
        calls += 1
        return None if seed is None else (seed * 1_000_003 + calls) % 2**63

    for k in range(blocks):
        live = [c for c in chains if not c.ended(model.eos)]
        grow = [c for c in live if len(c.ids) < block_ends(c.cap, blocks)[k]]
        ends = {id(c): block_ends(c.cap, blocks)[k] for c in live}
        if grow:
            for c, (s, lp, lq) in zip(grow, _extend(model, grow, [len(c.ids) for c in grow],
                                                    [ends[id(c)] for c in grow], temperature, alpha, call_seed(),
                                                    stats)):
                c.ids, c.logp, c.logq = c.ids + s, c.logp + lp.tolist(), c.logq + lq.tolist()
        for _ in range(mh_steps if live else 0):
            cuts = [int(rng.integers(0, len(c.ids))) for c in live]
            props = _extend(model, live, cuts, [ends[id(c)] for c in live], temperature, alpha, call_seed(), stats)
            for c, cut, (s, lp, lq) in zip(live, cuts, props):
                stats.proposals += 1
                ratio = log_acceptance(alpha, lp, lq, c.logp[cut:], c.logq[cut:], len(c.ids), cut + len(s))
                if accept(ratio, float(rng.random())):
                    stats.accepted += 1
                    c.ids, c.logp, c.logq = c.ids[:cut] + s, c.logp[:cut] + lp.tolist(), c.logq[:cut] + lq.tolist()
    return stats


def check_power_options(alpha: Any, blocks: Any, mh_steps: Any) -> None:
    """ValueError naming the option when alpha, blocks or mh_steps is out of range."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 1:
        raise ValueError(f"alpha: expected a number >= 1 (1 = plain sampling), got {alpha!r}")
    for name, value in (("blocks", blocks), ("mh_steps", mh_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "blocks" else 0):
            raise ValueError(f"{name}: expected an integer >= {1 if name == 'blocks' else 0}, got {value!r}")


class PowerSampler:
    """`Sampler` drawing from p^alpha over a base backend: `base` "hf" or "vllm" (a new base sampler over `policy`,
    with the other keyword options as its constructor's: hf `max_batch`, vllm `VLLMSampler`'s), or a base sampler
    object already built (an `HFSampler` or `VLLMSampler`; the trainer passes its own, so one vLLM engine serves
    both the plain and the power evaluation), which `close` then leaves open."""

    def __init__(self, policy: Any, alpha: float = ALPHA, blocks: int = BLOCKS, mh_steps: int = MH_STEPS,
                 base: Any = "hf", **base_options: Any) -> None:
        check_power_options(alpha, blocks, mh_steps)
        self.alpha, self.blocks, self.mh_steps = float(alpha), blocks, mh_steps
        self.base, self.owns_base = _base_sampler(policy, base, base_options), isinstance(base, str)
        self.model = _power_model(self.base, policy)
        self.last_stats: dict[str, int] = {}

    def sync(self, policy: Any) -> None:
        self.base.sync(policy)
        self.model.sync(policy)

    def sleep(self) -> None:
        self.base.sleep()

    def wake_up(self) -> None:
        self.base.wake_up()

    def close(self) -> None:
        if self.owns_base:
            self.base.close()

    def generate(self, prompts: list[str], n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None) -> list[Group]:
        check_generate_args(prompts, n, temperature, top_p, max_new_tokens)
        if temperature == 0 or top_p != 1.0:
            raise ValueError(f"temperature, top_p: power sampling needs temperature > 0 and top_p 1 (the proposal "
                             f"is the whole tempered model), got {temperature!r}, {top_p!r}")
        groups = [Group(prompt=p, prompt_ids=prompt_token_ids(self.base.tokenizer, p)) for p in prompts]
        chains = [Chain(g.prompt_ids, self.model.budget(g.prompt_ids, max_new_tokens)) for g in groups
                  for _ in range(n)]
        stats = run_chains(self.model, chains, alpha=self.alpha, blocks=self.blocks, mh_steps=self.mh_steps,
                           temperature=float(temperature), seed=seed)
        for i, c in enumerate(chains):
            g = groups[i // n]
            g.token_ids.append(list(c.ids))
            g.logprobs.append(list(c.logp))
            g.truncated.append(not c.ended(self.model.eos))
            g.texts.append(self.base.tokenizer.decode(c.ids, skip_special_tokens=True))
        self.last_stats = {"tokens_generated": stats.tokens_generated, "answers": len(chains),
                           "proposals": stats.proposals, "accepted": stats.accepted}
        return groups


def _base_sampler(policy: Any, base: Any, options: dict[str, Any]) -> Any:
    """The base sampler: built from its kind's name over `policy`, or the given sampler object."""
    if not isinstance(base, str):
        if options:
            raise ValueError(f"base: options {sorted(options)} given with a base sampler object; they are its "
                             "constructor's (build it with them, or pass base='hf'/'vllm')")
        return base
    if base == "hf":
        from studykit.policy.sampling.hf import HFSampler

        return HFSampler(policy, **options)
    if base == "vllm":
        from studykit.policy.sampling.vllm_backend import VLLMSampler

        return VLLMSampler(policy, **options)
    raise ValueError(f"base: expected 'hf', 'vllm' or a sampler object, got {base!r}")


def _power_model(sampler: Any, policy: Any) -> PowerModel:
    """The `PowerModel` over a base sampler, chosen by its class (vllm scores with the policy's own model)."""
    from studykit.policy.sampling.hf import HFSampler

    if isinstance(sampler, HFSampler):
        from studykit.policy.sampling.power_hf import HFPowerModel

        return HFPowerModel(sampler)
    from studykit.policy.sampling.vllm_backend import VLLMSampler  # imports vllm only when an engine is built

    if isinstance(sampler, VLLMSampler):
        from studykit.policy.sampling.power_vllm import VLLMPowerModel

        return VLLMPowerModel(sampler, policy)
    raise ValueError(f"base: expected an HFSampler or a VLLMSampler, got {type(sampler).__name__}")
