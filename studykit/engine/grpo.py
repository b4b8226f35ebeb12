"""Pure GRPO pieces on torch tensors: advantage estimators, the clipped policy loss, the dynamic-sampling
filter and per-token log-probs of given completions.

References:
* GRPO - Shao et al. 2024, DeepSeekMath: group-normalised advantages (r - mean) / std.
* Dr. GRPO - Liu et al. 2025, "Understanding R1-Zero-Like Training": no std division (r - mean).
* DAPO - Yu et al. 2025: clip-higher (asymmetric clip 0.2 / 0.28), token-mean loss aggregation and dynamic
  sampling (drop groups whose rewards all agree).
* NSR / PSR and W-REINFORCE - Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement in LLM
  Reasoning".

Choices and departures:
* `grpo` uses the UNBIASED group std (torch.std default), as the paper's verl code does; a group of one sample
  gets zero advantage.
* Every estimator reads the TRAINING REWARD only (true correctness is logged, never trained on), as the paper's
  code does: a correct but badly formatted sample has reward 0 and counts as a negative sample.
* Two families of negative/positive-sample training, two different claims:
  - `nsr` / `psr` (the Mirage paper's runs, through GRPO): GRPO advantages kept only on samples with reward < 1
    (NSR) / reward > 0 (PSR), zero elsewhere; for 0/1 rewards `grpo == nsr + psr` exactly. Groups still need a
    spread of rewards to carry signal, so dynamic sampling stays on.
  - `nsr_reinforce` / `psr_reinforce` / `w_reinforce` (Zhu et al.'s own objectives, REINFORCE without a group
    baseline): -1 on every unrewarded sample / +1 on every rewarded sample / +lam rewarded and -1 unrewarded.
    "Rewarded" means reward > 0. An all-wrong group carries -1 everywhere, which is the signal Zhu et al. train
    on, so `studykit.config.schema` turns dynamic sampling off by default for this family.
* `policy_loss` is verl's PPO surrogate with asymmetric clipping but without verl's dual-clip bound
  (clip_ratio_c) for negative advantages. `approx_kl` in the stats is k2 = mean 0.5*(logprob - old)^2; the
  optional reference-KL penalty uses the k3 estimator exp(ref - lp) - (ref - lp) - 1, clamped as verl 0.9.1's
  `low_var_kl` (ref - lp to +-20 before exp, the per-token k3 to +-10; core_algos.kl_penalty_forward).
* `token_logprobs` passes position ids from the attention mask (cumsum - 1) so that left-padded prompts get the
  positions HF `generate` gives them. It asks the model only for the completion positions' logits
  (`logits_to_keep`) and takes their log-softmax a chunk of rows at a time in a custom autograd Function
  (`chunked_token_logprobs`) that keeps nothing but the logits for backward: peak memory is the logits plus a few
  chunk x vocab fp32 temporaries, not several [B, T, V] fp32 tensors. Values and gradients are those of the plain
  `log_softmax(logits.float() / T)` (bit for bit on the CPUs tested).
* Gradient accumulation: `loss_denominator` gives a whole mini-batch's token (token-mean) or non-empty-sequence
  (seq-mean-*) count; `policy_loss(..., denom=...)` on each micro-batch then sums to the mini-batch's loss.
* `tis_weights`: truncated importance sampling of the trainer's old log-probs against the sampler's
  (min(exp(old - sampler), cap)), a per-token weight on the policy-gradient term, as verl's and TRL's TIS.
"""

from __future__ import annotations

import torch

ESTIMATORS = ("grpo", "dr_grpo", "nsr", "psr", "nsr_reinforce", "psr_reinforce", "w_reinforce")
# Zhu et al.'s estimators: no group baseline, so a group whose rewards agree still carries signal.
REINFORCE_ESTIMATORS = ("nsr_reinforce", "psr_reinforce", "w_reinforce")
AGGS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
KL_LOG_RATIO_CLAMP = 20.0  # verl 0.9.1 low_var_kl: ref - logprob clamped before exp
KL_CLAMP = 10.0  # ... and the per-token k3 value clamped to +-10


def _as_2d(x, field: str, dtype=torch.float32) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype) if not isinstance(x, torch.Tensor) else x.to(dtype)
    if t.dim() != 2:
        raise ValueError(f"{field} must be a 2-D [groups, samples] tensor, got shape {tuple(t.shape)}")
    return t


def _group_std_adv(r: torch.Tensor, eps: float, scale: bool) -> torch.Tensor:
    if r.shape[1] < 2:
        return torch.zeros_like(r)
    centred = r - r.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (r.std(dim=1, keepdim=True) + eps)


def make_estimator(name: str, options: dict | None = None):
    """What `compute_advantages` takes for the run's estimator, built once per run: a shipped name as it is (no
    options), an estimator plug-in resolved with its options checked (studykit.scoring.plugins.PluginEstimator)."""
    if name in ESTIMATORS:
        if options:
            raise ValueError(f"estimator {name!r} takes no options (got {options!r}); options reach plug-ins only")
        return name
    from studykit.scoring import plugins

    return plugins.estimator(name, options or {}, ESTIMATORS)


def compute_advantages(rewards, estimator, eps: float = 1e-6, lam: float = 0.1,
                       options: dict | None = None) -> torch.Tensor:
    """Advantages [G, N] for training rewards [G, N] (one row per prompt group) under `estimator`.

    `lam` is W-REINFORCE's weight on rewarded samples (Zhu et al. 2025: 0.1). See the module docstring. Any other
    name is an estimator plug-in (studykit.scoring.plugins), called per group with `options`; a callable is one
    `make_estimator` built (its options are inside it, `options` must be None).
    """
    r = _as_2d(rewards, "rewards")
    if callable(estimator) or estimator not in ESTIMATORS:
        if callable(estimator) and options:
            raise ValueError(f"{estimator!r} was built with its options; got options={options!r} as well")
        fn = estimator if callable(estimator) else make_estimator(estimator, options)
        adv = fn(r.detach().cpu().double().numpy())
        return torch.as_tensor(adv, dtype=r.dtype, device=r.device)
    if options:
        raise ValueError(f"estimator {estimator!r} takes no options (got {options!r}); options reach plug-ins only")
    zero, one = torch.zeros_like(r), torch.ones_like(r)
    rewarded = r > 0
    if estimator == "nsr_reinforce":
        return torch.where(rewarded, zero, -one)
    if estimator == "psr_reinforce":
        return torch.where(rewarded, one, zero)
    if estimator == "w_reinforce":
        return torch.where(rewarded, torch.full_like(r, float(lam)), -one)
    adv = _group_std_adv(r, eps, scale=estimator != "dr_grpo")
    if estimator == "nsr":
        return torch.where(r < 1, adv, zero)
    if estimator == "psr":
        return torch.where(rewarded, adv, zero)
    return adv


def filter_groups(rewards) -> torch.Tensor:
    """Bool [G]: True = keep the group (its rewards are not all equal; DAPO dynamic sampling)."""
    r = _as_2d(rewards, "rewards")
    return r.max(dim=1).values != r.min(dim=1).values


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, agg: str, denom=None) -> torch.Tensor:
    if agg == "token-mean":
        total = (per_token * mask).sum()
        return total / (mask.sum().clamp(min=1.0) if denom is None else denom)
    seq_sum = (per_token * mask).sum(dim=1)
    lengths = mask.sum(dim=1)
    seq = seq_sum / lengths.clamp(min=1.0) if agg == "seq-mean-token-mean" else seq_sum
    nonempty = (lengths > 0).to(seq.dtype)  # sequences without tokens do not count
    return (seq * nonempty).sum() / (nonempty.sum().clamp(min=1.0) if denom is None else denom)


def loss_denominator(masks, agg: str) -> torch.Tensor:
    """What `agg` divides by over a whole mini-batch given as its micro-batches' masks [b_i, T_i]: the number of
    completion tokens (token-mean) or of non-empty sequences (seq-mean-*), at least 1. Passing it as `denom` to
    `policy_loss` on each micro-batch makes the micro-batch losses sum to the mini-batch's loss exactly."""
    if agg not in AGGS:
        raise ValueError(f"unknown loss aggregation agg={agg!r}; expected one of {list(AGGS)}")
    masks = [masks] if isinstance(masks, torch.Tensor) else list(masks)
    if agg == "token-mean":
        counts = [m.float().sum() for m in masks]
    else:
        counts = [(m.float().sum(dim=1) > 0).float().sum() for m in masks]
    return torch.stack(counts).sum().clamp(min=1.0)


def tis_weights(old_logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                cap: float) -> torch.Tensor:
    """Truncated importance-sampling weights [B, T] for the sampler/trainer mismatch (as verl's and TRL's TIS):
    min(exp(old_logprobs - sampler_logprobs), cap) on completion tokens, 1 elsewhere; no gradient.

    `old_logprobs` are the trainer's log-probs of the sampled tokens before the update, `sampler_logprobs` the
    sampler's (vLLM's); the weight corrects the policy gradient for sampling from a slightly different model."""
    if cap <= 0:
        raise ValueError(f"tis cap must be > 0, got {cap}")
    if old_logprobs.shape != sampler_logprobs.shape or mask.shape != old_logprobs.shape:
        raise ValueError(f"old_logprobs, sampler_logprobs and mask must all be [B, T]; got {tuple(old_logprobs.shape)}, "
                         f"{tuple(sampler_logprobs.shape)}, {tuple(mask.shape)}")
    on = mask > 0
    diff = torch.where(on, old_logprobs.detach().float() - sampler_logprobs.detach().float(),
                       torch.zeros_like(old_logprobs, dtype=torch.float32))
    return torch.exp(diff).clamp(max=float(cap))


def _check_loss_inputs(logprobs, old_logprobs, advantages, mask, agg) -> torch.Tensor:
    if agg not in AGGS:
        raise ValueError(f"unknown loss aggregation agg={agg!r}; expected one of {list(AGGS)}")
    if logprobs.dim() != 2 or old_logprobs.shape != logprobs.shape or mask.shape != logprobs.shape:
        raise ValueError(
            f"logprobs, old_logprobs and mask must all be [B, T]; got {tuple(logprobs.shape)}, "
            f"{tuple(old_logprobs.shape)}, {tuple(mask.shape)}"
        )
    if advantages.dim() == 1 and advantages.shape[0] == logprobs.shape[0]:
        return advantages[:, None]
    if advantages.shape == logprobs.shape:
        return advantages
    raise ValueError(f"advantages must be [B] (or [B, T]); got {tuple(advantages.shape)} for logprobs "
                     f"{tuple(logprobs.shape)}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    agg: str = "token-mean",
    clip: bool = True,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    denom: torch.Tensor | float | None = None,
    is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped surrogate with ratio clip [1 - clip_low, 1 + clip_high] (see module docstring).

    logprobs/old_logprobs/mask: [B, T]; advantages: [B] per sequence. Returns (scalar loss, stats).
    `denom`: what the aggregation divides by (`loss_denominator` of the whole mini-batch when this is one of its
    micro-batches; None = this batch's own). `is_weights` [B, T]: per-token weights on the policy-gradient term
    (truncated importance sampling, `tis_weights`); None = 1. Token statistics (clip_frac, ratio_mean, ...) are
    means over this batch's tokens; `pg_loss` is aggregated like the loss.
    """
    adv = _check_loss_inputs(logprobs, old_logprobs, advantages, mask, agg).to(logprobs.dtype)
    m = mask.to(logprobs.dtype)
    on = m > 0
    log_ratio = torch.where(on, logprobs - old_logprobs.detach(), torch.zeros_like(logprobs))
    ratio = torch.exp(log_ratio)
    pg = -adv * ratio
    if clip:
        clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
        pg = torch.maximum(pg, clipped)
    stats: dict[str, float] = {}
    if is_weights is not None:
        if is_weights.shape != logprobs.shape:
            raise ValueError(f"is_weights must be [B, T] like logprobs; got {tuple(is_weights.shape)}")
        w = is_weights.detach().to(pg.dtype)
        pg = pg * w
        stats["tis_weight_mean"] = _masked_mean(w, m)
        stats["tis_weight_max"] = float(w[on].max()) if on.any() else 1.0
    per_token = pg
    if kl_coef > 0:
        if ref_logprobs is None:
            raise ValueError("kl_coef > 0 needs ref_logprobs ([B, T] log-probs under the reference model)")
        d = torch.where(on, ref_logprobs.detach() - logprobs, torch.zeros_like(logprobs))
        d = d.clamp(-KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP)  # as verl's low_var_kl: exp() stays finite
        kl = (torch.exp(d) - d - 1.0).clamp(-KL_CLAMP, KL_CLAMP)  # one far-off token cannot end the run as non-finite
        per_token = per_token + kl_coef * kl
        stats["kl_ref"] = _masked_mean(kl.detach(), m)
    if entropy_coef > 0:
        if entropy is None:
            raise ValueError("entropy_coef > 0 needs entropy ([B, T] per-token entropy)")
        per_token = per_token - entropy_coef * entropy
    loss = _aggregate(per_token, m, agg, denom)
    stats.update(_loss_stats(ratio.detach(), log_ratio.detach(), adv.detach(), m, on, clip, clip_low, clip_high))
    stats["pg_loss"] = float(_aggregate(pg.detach(), m, agg, denom))
    if entropy is not None:
        stats["entropy"] = _masked_mean(entropy.detach(), m)
    return loss, stats


def _loss_stats(ratio, log_ratio, adv, m, on, clip, clip_low, clip_high) -> dict[str, float]:
    adv = adv.expand_as(ratio)
    if clip:
        low = on & (adv < 0) & (ratio < 1.0 - clip_low)
        high = on & (adv > 0) & (ratio > 1.0 + clip_high)
    else:
        low = high = torch.zeros_like(on)
    n = m.sum().clamp(min=1.0)
    return {
        "clip_frac": float((low | high).sum() / n),
        "clip_frac_low": float(low.sum() / n),
        "clip_frac_high": float(high.sum() / n),
        "ratio_mean": _masked_mean(ratio, m),
        "ratio_max": float(ratio[on].max()) if on.any() else 1.0,
        "approx_kl": _masked_mean(0.5 * log_ratio**2, m),
    }


def _completion_window(input_ids: torch.Tensor, completion_mask: torch.Tensor) -> tuple[int, bool]:
    if input_ids.dim() != 2 or completion_mask.dim() != 2 or completion_mask.shape[0] != input_ids.shape[0]:
        raise ValueError(
            f"input_ids must be [B, L] and completion_mask [B, T] with T <= L; got {tuple(input_ids.shape)}, "
            f"{tuple(completion_mask.shape)}"
        )
    L, T = input_ids.shape[1], completion_mask.shape[1]
    if T > L:
        raise ValueError(f"completion_mask is longer ({T}) than input_ids ({L})")
    if T == L and bool(completion_mask[:, 0].any()):
        raise ValueError("completion_mask marks position 0, which has no preceding token to predict it from")
    return T, T == L


LOGPROB_CHUNK = 1024
"""Default token rows (sequences x positions) whose full-vocabulary log-softmax is materialised at once."""
_OVERWRITABLE = {"UnsafeViewBackward0", "ViewBackward0", "MmBackward0", "AddmmBackward0", "BmmBackward0",
                 "ToCopyBackward0", "LinearBackward0"}
"""Creators of a logits tensor that do not save it for their own backward: the gradient may reuse its storage.
Any other (say a softcapping tanh) gets a fresh gradient tensor."""


class _ChunkedTokenLogprobs(torch.autograd.Function):
    """log p(target) and the entropy of log_softmax(logits / temperature), a chunk of positions at a time.

    Forward keeps only the logits (the model's output, already in memory) for backward; backward recomputes each
    chunk's log-softmax and writes the gradient into the logits' own storage when their creator does not need them
    (a plain lm_head matmul; else into a fresh tensor), so the extra memory is a few chunk x vocab fp32 temporaries
    instead of several [B, T, V] fp32 tensors. The entropy
    output builds no graph of its own: its gradient is computed only when a loss uses it (entropy_coef > 0).
    Per position it is the same arithmetic as `log_softmax(logits.float() / temperature)` + gather, in values and
    in gradients."""

    @staticmethod
    def forward(ctx, logits, targets, temperature, rows):
        ctx.set_materialize_grads(False)
        B, K, _ = logits.shape
        T = K - 1  # the last position predicts nothing
        step = max(1, rows // max(B, 1))
        logp = logits.new_empty((B, T), dtype=torch.float32)
        ent = logits.new_empty((B, T), dtype=torch.float32)
        for s in range(0, T, step):
            e = min(s + step, T)
            lp_all = torch.log_softmax(logits[:, s:e].float() / temperature, dim=-1)
            logp[:, s:e] = lp_all.gather(-1, targets[:, s:e].unsqueeze(-1)).squeeze(-1)
            ent[:, s:e] = -(lp_all.exp() * lp_all).sum(-1)
            del lp_all
        ctx.save_for_backward(logits, targets)
        ctx.temperature, ctx.step = temperature, step
        ctx.inplace = type(logits.grad_fn).__name__ in _OVERWRITABLE
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        logits, targets = ctx.saved_tensors
        if g_logp is None and g_ent is None:
            return None, None, None, None
        T, temperature = logits.shape[1] - 1, ctx.temperature
        grad = logits if ctx.inplace else torch.empty_like(logits)  # in place: each chunk is read, then written
        for s in range(0, T, ctx.step):
            e = min(s + ctx.step, T)
            lp_all = torch.log_softmax(logits[:, s:e].float() / temperature, dim=-1)
            g = torch.zeros_like(lp_all)
            if g_logp is not None:
                g.scatter_add_(-1, targets[:, s:e].unsqueeze(-1), g_logp[:, s:e].unsqueeze(-1))
            if g_ent is not None:
                p = lp_all.exp()
                g = g - g_ent[:, s:e].unsqueeze(-1) * (p * lp_all + p)
                del p
            g = torch._log_softmax_backward_data(g, lp_all, -1, torch.float32)
            grad[:, s:e] = (g / temperature).to(grad.dtype)
            del lp_all, g
        grad[:, T:] = 0
        return grad, None, None, None


def chunked_token_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                           chunk: int = LOGPROB_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies [B, K-1] of `targets` [B, K-1] under log_softmax(logits / temperature), from logits
    [B, K, V] whose position t predicts targets[:, t] (the last position is unused), `chunk` token rows at a time.

    Differentiable in `logits`. When `logits` come straight from a matmul (a model's lm_head), the backward
    overwrites them with their gradient: pass a tensor nothing reads after the backward (a model output)."""
    if logits.dim() != 3 or targets.shape != (logits.shape[0], logits.shape[1] - 1):
        raise ValueError(f"logits must be [B, K, V] and targets [B, K-1]; got {tuple(logits.shape)}, "
                         f"{tuple(targets.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _ChunkedTokenLogprobs.apply(logits, targets, float(temperature), int(chunk))


def _first_completion_column(completion_mask: torch.Tensor) -> int:
    cols = completion_mask.bool().any(dim=0).nonzero()
    return int(cols[0]) if len(cols) else completion_mask.shape[1] - 1


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
    chunk: int = LOGPROB_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs and entropies [B, T] of the tokens in the last T positions of `input_ids` under the tempered
    model (logits / temperature).

    input_ids/attention_mask: [B, L] (`rollout.pack`: left-padded prompt+completion, rows ending in the last column);
    completion_mask: [B, T] marks the completion tokens among the last T positions (T = L is allowed and then
    aligns with input_ids; position 0 must be unmarked). Positions outside the mask are returned as 0.
    Only the logits of positions from the first marked one on are computed (`logits_to_keep`), and their
    log-softmax is taken `chunk` token rows at a time (`chunked_token_logprobs`); the entropy carries a gradient
    only into a loss that uses it.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    T, full = _completion_window(input_ids, completion_mask)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    lead = _first_completion_column(completion_mask) if full else 0  # columns before any completion token
    lead = max(lead, 1) if full else 0
    window = T - lead  # predicted positions: the last `window` tokens of input_ids
    keep = window + 1  # logits at positions L-window-1 .. L-2 predict them; the last one predicts nothing
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
    try:
        out = model(**inputs, logits_to_keep=keep)
        logits = out.logits
    except TypeError:  # a model without `logits_to_keep`: compute every position's logits
        logits = model(**inputs).logits[:, -keep:]
    del inputs
    logp, ent = chunked_token_logprobs(logits, input_ids[:, -window:], temperature, chunk)
    if lead:
        pad = logp.new_zeros((logp.shape[0], lead))
        logp, ent = torch.cat([pad, logp], dim=1), torch.cat([pad, ent], dim=1)
    cm = completion_mask.to(logp.dtype)
    return logp * cm, ent * cm
