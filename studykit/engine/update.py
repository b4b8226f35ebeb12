"""The GRPO update of one rollout batch, sized for one GPU: mini-batches of micro-batches.

* Mini-batches: the batch is shuffled (seed + step) and split into `train.mini_batches` parts; each part is ONE
  optimiser step (clip_grad_norm_ then AdamW), `train.epochs` passes over them.
* Micro-batches: each mini-batch is cut into pieces of `train.micro_batch_size` sequences (None = one piece),
  packed and run through forward/backward one at a time, gradients accumulated. Every micro-batch's loss is
  normalised by the WHOLE mini-batch's denominator (`grpo.loss_denominator`: its completion tokens for
  token-mean, its non-empty sequences for seq-mean-*), so the accumulated gradient is the mini-batch's for every
  aggregation. Token statistics are combined token-weighted (`combine_stats`).
* Old log-probs: the first mini-batch takes them from its own training forward (the policy has not moved since
  sampling); the others are recomputed before any update, per micro-batch under no_grad in eval mode (as verl
  does), unless `algo.old_logprobs` is `sampler`. When the model has active dropout (`model.lora_dropout` > 0),
  the first mini-batch's are recomputed in eval mode too: every mini-batch's old log-probs then come from the
  same dropout-free forward, instead of the first carrying the training forward's dropout noise.
* Reference log-probs (`algo.kl_coef > 0`, `make_reference`): per micro-batch under no_grad, before any update;
  the k3 penalty is `grpo.policy_loss`'s, logged as `train/kl_ref`.
* Truncated importance sampling (`algo.tis_cap`): `grpo.tis_weights` of the trainer's old log-probs against the
  sampler's. The first mini-batch's mean |trainer - sampler| log-prob gap is logged (`train/logprob_abs_diff`);
  above `LOGPROB_GAP_BOUND` the step warns (`LogprobGapWarning`) and logs `train/logprob_gap_exceeded` 1.

Forward passes run under `Policy.autocast()` (bf16 autocast over fp32 master weights for a bf16 full fine-tune)
and log-probs are taken `train.logprob_chunk` token rows at a time (`grpo.token_logprobs`). With
micro_batch_size None the arithmetic is the single-pass update's, bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import torch

from studykit.engine import grpo
from studykit.engine.rollout import pack

REF_COPY_MAX_PARAMS = 2_000_000_000
"""A full fine-tune's KL reference is a frozen copy of the initial model (same storage dtype, so the KL at step 0 is
exactly 0); above this many parameters the copy is refused: use lora/qlora, whose reference costs no memory."""
_SUMMED = {"loss", "pg_loss"}  # already normalised by the mini-batch's denominator: micro-batches add up
_MAXED = {"ratio_max", "tis_weight_max"}


LOGPROB_GAP_BOUND = 0.1
"""Mean |trainer - sampler| log-prob per completion token (nats) above which a step warns: verl's rollout-correction
guide flags a training/rollout KL above 0.1 as significant mismatch (docs/advance/rollout_is.md). Same-precision
samplers sit far below it (HF sampler: ~1e-6; bf16 vLLM vs an fp32 trainer: ~1e-2)."""


class LogprobGapWarning(UserWarning):
    """The sampler's log-probs are far from the trainer's: the samples come from another model than the one trained."""


def check_logprob_gap(gap: float, step: int, tis_cap: float | None, bound: float = LOGPROB_GAP_BOUND) -> float:
    """1.0 (and a LogprobGapWarning) when the mean sampler/trainer log-prob gap `gap` passes `bound`, else 0.0."""
    if not gap > bound:
        return 0.0
    fix = (f"truncated importance sampling is on (algo.tis_cap {tis_cap})" if tis_cap else
           "set algo.tis_cap (e.g. 2.0) to correct it")
    warnings.warn(f"step {step}: the sampler's log-probs differ from the trainer's by {gap:.3g} nats per token on "
                  f"average (bound {bound}): the samples come from another model than the one trained (a 4-bit "
                  f"trainer behind a bf16 vLLM?); {fix}", LogprobGapWarning, stacklevel=2)
    return 1.0


class NonFiniteLoss(RuntimeError):
    """A loss or gradient norm that is NaN or infinite; the run fails with this as its reason."""


class Reference:
    """Where reference log-probs come from: the policy with its adapter disabled, or a frozen copy."""

    def __init__(self, model: torch.nn.Module, adapter_off: bool) -> None:
        self.model, self.adapter_off = model, adapter_off

    def context(self):
        return self.model.disable_adapter() if self.adapter_off else contextlib.nullcontext()


def make_reference(policy, kl_coef: float) -> Reference | None:
    """The KL reference of `policy` (None when kl_coef is 0): lora/qlora = the base (peft `disable_adapter()`),
    full = a frozen deep copy of the model as it is now (call before loading a checkpoint: the initial model)."""
    if kl_coef <= 0:
        return None
    if policy.finetune != "full":
        if not hasattr(policy.model, "disable_adapter"):
            raise ValueError(f"algo.kl_coef > 0 with finetune {policy.finetune!r} needs a peft model "
                             "(disable_adapter) to compute reference log-probs")
        return Reference(policy.model, adapter_off=True)
    n_params = sum(p.numel() for p in policy.model.parameters())
    if n_params > REF_COPY_MAX_PARAMS:
        raise ValueError(
            f"algo.kl_coef > 0 with finetune 'full' needs a frozen copy of the initial model as the reference; this "
            f"one has {n_params / 1e9:.1f}B parameters, over the {REF_COPY_MAX_PARAMS / 1e9:.0f}B limit "
            "(studykit.engine.update.REF_COPY_MAX_PARAMS). Use model.finetune lora or qlora (the reference is the base with "
            "the adapter disabled, no copy) or algo.kl_coef 0")
    frozen = copy.deepcopy(policy.model).eval()
    frozen.requires_grad_(False)
    return Reference(frozen, adapter_off=False)


def check_trainable_precision(policy) -> None:
    """Refuse trainable parameters below fp32: bf16/fp16 rounding swallows small (lr 1e-6) updates."""
    low = sorted({str(p.dtype) for p in policy.trainable_parameters() if p.dtype != torch.float32})
    if low:
        raise ValueError(f"trainable parameters are {low}, not float32: their optimiser updates would be rounded away. "
                         "Load the policy with studykit.policy.models (fp32 adapters; fp32 master weights under bf16 autocast "
                         "for full fine-tuning)")


def split(rolls, cfg, step: int, pad_id: int, device) -> list[list[dict]]:
    """Mini-batches (lists of packed micro-batches on `device`) of the rollouts, in the step's shuffled order."""
    order = np.random.default_rng(cfg.train.seed + step).permutation(len(rolls)).tolist()
    chunks = [c for c in np.array_split(order, min(cfg.train.mini_batches, len(order))) if len(c)]
    size = cfg.train.micro_batch_size
    out = []
    for chunk in chunks:
        idx = list(map(int, chunk))
        pieces = [idx] if size is None else [idx[i:i + size] for i in range(0, len(idx), size)]
        out.append([{k: v.to(device) for k, v in pack(rolls, p, pad_id).items()} for p in pieces])
    return out


def _logprobs(policy, model, b: dict, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    with policy.autocast():
        return grpo.token_logprobs(model, b["input_ids"], b["attention_mask"], b["completion_mask"],
                                   cfg.train.temperature, cfg.train.logprob_chunk)


def prepare(policy, batches: list[list[dict]], cfg, reference: Reference | None = None) -> None:
    """Old log-probs of every mini-batch but the first (all of them when the model has dropout; or the sampler's)
    and reference log-probs, per micro-batch under no_grad in eval mode, before any update."""
    model = policy.model
    if cfg.algo.old_logprobs == "sampler":
        for b in (b for micros in batches for b in micros):
            b["old_logprobs"] = b["sampler_logprobs"]
    first = 0 if has_dropout(model) else 1  # a dropout forward is not the policy's own log-probs: recompute all
    recompute = [b for micros in batches[first:] for b in micros] if cfg.algo.old_logprobs == "recompute" else []
    if not recompute and reference is None:
        return
    with torch.no_grad():
        model.eval()
        for b in recompute:
            b["old_logprobs"], _ = _logprobs(policy, model, b, cfg)
        if reference is not None:
            for b in (b for micros in batches for b in micros):
                with reference.context():
                    b["ref_logprobs"], _ = _logprobs(policy, reference.model, b, cfg)


def has_dropout(model: torch.nn.Module) -> bool:
    """Whether a training-mode forward of `model` drops anything (a Dropout module with p > 0)."""
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def combine_stats(parts: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """One mini-batch's statistics from its micro-batches' (stats, completion tokens): losses add up (each is
    normalised by the mini-batch's denominator), maxima take the max, the rest are token-weighted means."""
    if len(parts) == 1:
        return dict(parts[0][0])
    out: dict[str, float] = {}
    for key in dict.fromkeys(k for stats, _ in parts for k in stats):
        vals = [(stats[key], n) for stats, n in parts if key in stats]
        if key in _SUMMED:
            out[key] = float(sum(v for v, _ in vals))
        elif key in _MAXED:
            out[key] = float(max((v for v, n in vals if n > 0), default=vals[0][0]))
        else:
            total = sum(n for _, n in vals)
            out[key] = float(sum(v * n for v, n in vals) / total) if total > 0 else float(np.mean([v for v, _ in vals]))
    return out


def minibatch_step(policy, optimizer, micros: list[dict], cfg, step: int, first: bool) -> dict[str, float]:
    """One optimiser step over a mini-batch given as micro-batches (gradient accumulation); returns its stats."""
    algo = cfg.algo
    denom = grpo.loss_denominator([b["completion_mask"] for b in micros], algo.agg)
    optimizer.zero_grad(set_to_none=True)
    parts = []
    for b in micros:
        logp, entropy = _logprobs(policy, policy.model, b, cfg)
        m, extra = b["completion_mask"], {}
        if first:
            b.setdefault("old_logprobs", logp.detach())
            extra["logprob_abs_diff"] = float(((logp.detach() - b["sampler_logprobs"]).abs() * m).sum()
                                              / m.sum().clamp(min=1))
        tis = grpo.tis_weights(b["old_logprobs"], b["sampler_logprobs"], m, algo.tis_cap) if algo.tis_cap else None
        loss, stats = grpo.policy_loss(logp, b["old_logprobs"], b["advantages"], m, clip_low=algo.clip_low,
                                       clip_high=algo.clip_high, agg=algo.agg, clip=algo.clip,
                                       ref_logprobs=b.get("ref_logprobs"), kl_coef=algo.kl_coef, entropy=entropy,
                                       entropy_coef=algo.entropy_coef, denom=denom, is_weights=tis)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss {loss.item()} at step {step}")
        loss.backward()
        parts.append((extra | {"loss": float(loss.detach())} | stats, float(m.sum())))
        del logp, entropy, loss
    norm = torch.nn.utils.clip_grad_norm_(policy.trainable_parameters(), cfg.train.grad_clip)
    if not torch.isfinite(norm):
        raise NonFiniteLoss(f"non-finite gradient norm at step {step}")
    optimizer.step()
    stats = combine_stats(parts)
    return {f"train/{k}": float(v) for k, v in stats.items()} | {"train/grad_norm": float(norm)}


def update(policy, optimizer, rolls, cfg, step: int, reference: Reference | None = None) -> dict[str, float]:
    """All optimiser steps of one rollout batch (see the module docstring); stats are means over mini-batches."""
    batches = split(rolls, cfg, step, policy.tokenizer.pad_token_id, policy.device)
    prepare(policy, batches, cfg, reference)
    policy.model.train()
    agg: dict[str, list[float]] = {}
    for epoch in range(cfg.train.epochs):
        for i, micros in enumerate(batches):
            for k, v in minibatch_step(policy, optimizer, micros, cfg, step, first=epoch == 0 and i == 0).items():
                agg.setdefault(k, []).append(v)
    optimizer.zero_grad(set_to_none=True)  # free the gradients before the sampler wakes up
    out = {k: float(np.mean(v)) for k, v in agg.items()}
    if "train/logprob_abs_diff" in out:
        out["train/logprob_gap_exceeded"] = check_logprob_gap(out["train/logprob_abs_diff"], step, cfg.algo.tis_cap)
    return out
