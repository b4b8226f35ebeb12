"""The training sections of a run config: `algo` (the objective: estimator, clipping, KL, importance sampling,
dynamic sampling) and `train` (steps, batch shape, optimiser, sampler). Defaults follow the paper's recipe
(arXiv 2508.21188, section 3) except where a field says it departs; `studykit.config.schema` assembles them."""


from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from studykit.config import validation as checks
from studykit.config.paramfile import Bool, CheckError, Int, Num, Seed

from studykit.config.sections import (  # noqa: F401
    ESTIMATORS, REINFORCE_ESTIMATORS, REWARDS, _estimator_name, _Section,
)


TIS_CAP_QLORA_VLLM = 2.0
"""`algo.tis_cap` of a vllm-sampled qlora run when none is given: verl's token-level truncated importance sampling
(docs/advance/rollout_is.md, `rollout_is_threshold: 2.0`, mode truncate; Yao et al. 2025, "Your efficient RL
framework secretly brings you off-policy RL training", use C = 2)."""


class AlgoConfig(_Section):
    estimator: str = "grpo"
    """Advantage estimator (studykit.engine.grpo.compute_advantages), always on the training reward. `nsr`/`psr`: the
    paper's GRPO advantages on samples with reward < 1 / > 0; `nsr_reinforce`/`psr_reinforce`/`w_reinforce`:
    Zhu et al. 2025's own -1 / +1 / (+lam, -1) objectives without a baseline. Or an estimator plug-in: an import path
    `package.module:function` or an installed `studykit.estimators` entry point's name (studykit.scoring.plugins)."""
    estimator_options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Keyword options of an estimator plug-in, checked by its `Options` model or signature ({} for a shipped
    estimator). In the config hash only when not empty."""
    lam: Num = Field(0.1, ge=0)
    """W-REINFORCE's weight on positive samples (Zhu et al. 2025 use 0.1)."""
    clip_low: Num = Field(0.2, ge=0, lt=1)
    """Lower ratio clip (PPO / the paper: 0.2): the ratio is kept above 1 - clip_low, so below 1."""
    clip_high: Num = Field(0.28, ge=0)
    """Upper ratio clip ("clip-higher", DAPO / the paper: 0.28)."""
    clip: Bool = True
    """Turn clipping off entirely (ablation of the random-reward mechanism)."""
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    """Loss aggregation (the paper: token-mean)."""
    kl_coef: Num = Field(0.0, ge=0)
    """KL penalty to the initial policy (the paper: none), k3 estimator per token clamped to +-10 as verl's
    `low_var_kl`, logged as `train/kl_ref`. The
    reference is the base with the adapter disabled for lora/qlora (no extra memory) and a frozen copy of the
    initial model for full fine-tuning (refused above studykit.engine.update.REF_COPY_MAX_PARAMS parameters)."""
    entropy_coef: Num = Field(0.0, ge=0)
    """Entropy bonus (the paper: none)."""
    dynamic_sampling: Bool = True
    """Drop groups whose rewards all agree (DAPO; the paper keeps it on). When not set it is on for the GRPO
    family and OFF for Zhu et al.'s estimators (an all-wrong group's -1 everywhere is their training signal).
    On with a REINFORCE-family estimator is refused unless `allow_dynamic_sampling_with_reinforce` is true."""
    allow_dynamic_sampling_with_reinforce: Bool = False
    """Opt-in for an ablation that filters groups under Zhu et al.'s estimators (nsr_reinforce, psr_reinforce,
    w_reinforce): without it `dynamic_sampling: true` with them is refused, since the filter drops the all-wrong
    groups that are their signal (a base file's `dynamic_sampling: true` would otherwise leak into their cells).
    Only valid with such an estimator and dynamic_sampling on. Not in the config hash (dynamic_sampling is)."""
    max_gen_batches: Int = Field(2, ge=1)
    """Generation batches drawn per step to refill after filtering."""
    old_logprobs: Literal["recompute", "sampler"] = "recompute"
    """Old log-probs from the training model (as verl) or the sampler's."""
    tis_cap: Num | None = Field(None, ge=1)
    """Truncated importance sampling for the sampler/trainer mismatch (verl's and TRL's TIS): the policy-gradient
    term of each token is weighted by min(exp(old_logprob - sampler_logprob), tis_cap). None = off (the paper).
    Needs old_logprobs `recompute`. In the config hash only when set. When not given, a `vllm` sampler with a
    `qlora` fine-tune gets `TIS_CAP_QLORA_VLLM` (vLLM samples from the bf16 base + adapter, the trainer takes
    gradients through the NF4 base); `tis_cap: null` written out turns it off."""

    _estimator = field_validator("estimator")(_estimator_name)

    @field_validator("estimator_options")
    @classmethod
    def _plugin_accepts(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "estimator" not in info.data:
            return options
        return checks.check_plugin_options("estimator", info.data["estimator"], options, ESTIMATORS, "algo.lam")

    @model_validator(mode="before")
    @classmethod
    def _filter_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dynamic_sampling" not in data:
            data = {**data, "dynamic_sampling": data.get("estimator", "grpo") not in REINFORCE_ESTIMATORS}
        return data

    @model_validator(mode="after")
    def _reinforce_keeps_all_groups(self) -> "AlgoConfig":
        """Dynamic sampling with a REINFORCE-family estimator only when asked for by name (an ablation)."""
        zhu = self.estimator in REINFORCE_ESTIMATORS
        if zhu and self.dynamic_sampling and not self.allow_dynamic_sampling_with_reinforce:
            raise CheckError(f"got true with algo.estimator {self.estimator!r}; expected false (the filter drops the "
                             "all-wrong groups that are Zhu et al.'s training signal), or set "
                             "algo.allow_dynamic_sampling_with_reinforce: true in an ablation that means it",
                             "dynamic_sampling")
        if self.allow_dynamic_sampling_with_reinforce and not (zhu and self.dynamic_sampling):
            raise CheckError(f"got true with algo.estimator {self.estimator!r} and dynamic_sampling "
                             f"{self.dynamic_sampling}; expected it only with dynamic_sampling true and one of "
                             f"{', '.join(REINFORCE_ESTIMATORS)} (elsewhere it would change nothing)",
                             "allow_dynamic_sampling_with_reinforce")
        return self

    @model_validator(mode="after")
    def _no_ignored_settings(self) -> "AlgoConfig":
        if self.tis_cap is not None and self.old_logprobs == "sampler":
            raise CheckError(f"got {self.tis_cap} with algo.old_logprobs 'sampler'; expected old_logprobs "
                             "'recompute' (with the sampler's log-probs as old log-probs every weight is 1)", "tis_cap")
        return self


class TrainConfig(_Section):
    steps: Int = Field(300, ge=0)
    """Optimiser steps (the paper: 300)."""
    prompts_per_step: Int = Field(128, ge=1)
    """Prompts per step (the paper: 128)."""
    group_size: Int = Field(16, ge=2)
    """Samples per prompt G (the paper: 16)."""
    mini_batches: Int = Field(2, ge=1)
    """Updates per rollout batch (the paper: 128 prompts / mini-batch 64 = 2)."""
    epochs: Int = Field(1, ge=1)
    """Passes over the rollout batch."""
    lr: Num = Field(1e-6, gt=0)
    """Learning rate (the paper: 1e-6, full fine-tuning)."""
    weight_decay: Num = Field(0.1, ge=0)
    """AdamW weight decay (the paper's verl recipe: 0.1)."""
    warmup_steps: Int = Field(10, ge=0)
    """Linear LR warm-up steps (the paper: 10)."""
    grad_clip: Num = Field(1.0, gt=0)
    """Gradient-norm clip."""
    temperature: Num = Field(1.0, gt=0)
    """Sampling temperature (the paper: 1.0)."""
    top_p: Num = Field(1.0, gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: Int = Field(1024, ge=1)
    """Response length cap (departure: the paper allows longer responses)."""
    micro_batch_size: Int | None = Field(None, ge=1)
    """Sequences per forward/backward pass; a mini-batch's gradients are accumulated over its micro-batches and
    equal the whole mini-batch's for every `algo.agg` (None = the whole mini-batch in one pass). Not in the
    config hash."""
    logprob_chunk: Int = Field(1024, ge=1)
    """Token rows whose full-vocabulary log-softmax is held at once when computing log-probs (memory about
    3 x logprob_chunk x vocab x 4 bytes). Not in the config hash."""
    sampler: Literal["hf", "vllm"] = "hf"
    """Rollout backend."""
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    """Backend options (e.g. gpu_memory_utilization, max_model_len for vllm). vllm's `enable_sleep_mode: true`
    puts the engine to sleep during each update (CUDA/ROCm/XPU only; not in the config hash)."""
    seed: Seed = 0
    """Seed for data order, sampling, rewards and initialisation."""
    checkpoint_every: Int = Field(0, ge=0)
    """Save a resumable checkpoint every N steps and at the final step (0 = only at the final step)."""
    threads: Int = Field(1, ge=1)
    """torch threads in this process (one per worker: cores are shared)."""

    @field_validator("sampler", mode="before")
    @classmethod
    def _not_power(cls, value: Any) -> Any:
        """Power samples have no per-token sampling law to train on (studykit.policy.sampling.power): refused here."""
        if value == "power":
            raise CheckError("got 'power'; expected 'hf' or 'vllm' (power sampling is evaluation-only: its samples "
                             "come from an MH chain with no per-token log-probs to train on; set eval.sampler: power "
                             "with train.steps: 0)")
        return value

    @field_validator("sampler_options")
    @classmethod
    def _sampler_accepts(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Keys and values the sampler's constructor takes (its signature); `enable_sleep_mode` refused (ignored)."""
        return checks.check_sampler_options(info.data["sampler"], options) if "sampler" in info.data else options

    @model_validator(mode="after")
    def _no_ignored_options(self) -> "TrainConfig":
        """`enable_sleep_mode` only with the vllm sampler (the hf sampler has nothing to put to sleep)."""
        if "enable_sleep_mode" in self.sampler_options and self.sampler != "vllm":
            raise CheckError("got enable_sleep_mode with sampler 'hf'; expected sampler 'vllm' (the hf sampler is "
                             "the training model itself and has nothing to put to sleep)", "sampler_options")
        return self


