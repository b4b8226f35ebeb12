"""Typed run and study configuration.

A run YAML has the sections below (`model`, `data`, `reward`, `algo`, `train`, `eval`, `tracking`, plus the
labels `study`, `rq`, `claim`, `condition`); the notebooks' parameters cells hold the same sections one to one.
Defaults follow the paper's recipe (arXiv 2508.21188, section 3: verl GRPO, clip 0.2/0.28, token-mean loss,
no KL, dynamic sampling, T=1.0, 16 samples per prompt, lr 1e-6) except where a field says it departs.
The toy-world values live in `params/toy/` with a comment per departure.
An unknown key or a bad value raises `ConfigError` naming the field, the value and what is allowed. Beyond the
schema, validation checks what a run would otherwise trip on minutes later (studykit.config.validation): registry names
(tasks, splits, templates, toy presets and knobs), sampler and task options against their constructors, the files
and folders a config names, the tracking store's driver; integers are strict (`steps: true` is an error), numbers
finite, names that become paths safe (SAFE_NAME), and a params file may neither be empty nor repeat a key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from studykit.config import validation as checks
from studykit.config.paramfile import SAFE_NAME, Bool, CheckError, Int, Num, Seed, describe, read_params

REWARDS = ("ground_truth", "random", "incorrect", "format", "majority_vote", "self_certainty")
ESTIMATORS = ("grpo", "dr_grpo", "nsr", "psr", "nsr_reinforce", "psr_reinforce", "w_reinforce")
REINFORCE_ESTIMATORS = ("nsr_reinforce", "psr_reinforce", "w_reinforce")  # Zhu et al. 2025: no group baseline


SAFE_CONDITION = r"^$|^[A-Za-z0-9][A-Za-z0-9_.@-]*$"  # a condition label may carry its ablation: `random@noclip`


def _task_split(split: str, info: ValidationInfo) -> str:
    """One of the splits the section's task declares (studykit.tasks.splits)."""
    return checks.check_split(info.data["task"], split) if "task" in info.data else split


def _estimator_name(name: str) -> str:
    """A shipped estimator (ESTIMATORS) or an estimator plug-in with the estimator interface."""
    return checks.check_estimator(name, ESTIMATORS)


class ConfigError(ValueError):
    """A params file or dict that does not validate; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)


class ModelConfig(_Section):
    name: str = "toy:strong"
    """Hub id, local folder, `runs:/<run id>/policy`, or `toy:<preset>` (strong, weak-method, weak-skill, custom)."""
    label: str | None = Field(None, pattern=SAFE_NAME)
    """The model's name in run tags, run names and the verdict table; None = `name`. A study grid whose model key
    differs from the `model.name` it sets (levels of `toy:custom` knobs on an alignment axis) uses the key. Not part
    of the config hash: it changes no result."""
    finetune: Literal["full", "lora", "qlora"] = "full"
    """`full` for tiny models; `lora`; `qlora` = 4-bit NF4 base + LoRA. The paper fine-tunes fully (departure on GPU)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Compute dtype of the forward passes, and the dtype vLLM serves the base in (float32 on CPU). Trainable
    parameters and optimiser state are float32 whatever it is: LoRA adapters are fp32, and a bf16 `full`
    fine-tune keeps fp32 master weights under bf16 autocast; `full` + float16 is refused."""
    lora_rank: Int = Field(16, ge=1)
    """LoRA rank r."""
    lora_alpha: Int = Field(32, ge=1)
    """LoRA scaling alpha (alpha / r multiplies the update)."""
    lora_dropout: Num = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """Modules that get adapters; `all-linear` is peft's every-linear-layer shortcut."""
    toy: dict[str, Any] = Field(default_factory=dict)
    """Knobs for `toy:custom` (see studykit.toy.ToyRecipe); an error with any other name (they would be ignored)."""
    gradient_checkpointing: Bool | None = None
    """Recompute each decoder layer's activations in backward (less memory, about a third more compute; the
    gradients are the same). None = auto: on for non-toy models of at least 100M parameters, off for the toy.
    Not in the config hash."""

    _name = field_validator("name")(checks.check_model_name)

    @property
    def shown(self) -> str:
        """The name tags, run names and reports use: `label`, else `name`."""
        return self.label or self.name

    @field_validator("toy")
    @classmethod
    def _toy_knobs(cls, knobs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Knobs only with `toy:custom`, each a ToyRecipe field with a value the recipe accepts."""
        if "name" in info.data:
            checks.check_toy_knobs(info.data["name"], knobs)
        return knobs


class EvalSet(_Section):
    task: str = "toy"
    """Task registry name (studykit.tasks.names())."""
    split: str = Field("test", validate_default=True)
    """Split passed to the task's `load`."""
    limit: Int | None = Field(None, ge=1)
    """Use the first `limit` problems (None = all)."""
    name: str | None = Field(None, pattern=SAFE_NAME)
    """Label in metric names `eval/<name>/...` and artifact paths; defaults to the task name."""

    _task = field_validator("task")(checks.check_task)
    _split = field_validator("split")(_task_split)

    @property
    def label(self) -> str:
        return self.name or self.task.replace(":", "_")


class OneShotConfig(_Section):
    rule: Literal["historical_variance", "base_variance", "random", "index"] = "historical_variance"
    """How the single example is chosen (1-shot RLVR, Wang et al. 2025, ranks by historical variance)."""
    index: Int = Field(0, ge=0)
    """Training-pool index for rule `index`."""
    source_run: str | None = None
    """MLflow run id of the full-data run whose per-example accuracy history ranks examples (historical_variance);
    None = the FINISHED run with `source_config_hash`."""
    source_config_hash: str | None = None
    """Config hash of that full-data ground-truth run; a study sets it to its baseline cell of the same model, task,
    seed and ablation. None = this config with full data and ground truth's labels (studykit.engine.one_shot)."""
    n_samples: Int = Field(16, ge=2)
    """Samples per example for `base_variance`."""
    pool: Int = Field(64, ge=1)
    """How many training examples are scored for `base_variance` / considered by `random`."""


class DataConfig(_Section):
    task: str = "toy"
    """Training task (registry name)."""
    task_options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Keyword options for the task (e.g. `path:` for `math`)."""
    train_split: str = Field("train", validate_default=True)
    """Split to train on."""
    train_size: Int | None = Field(None, ge=1)
    """Cap on training problems (None = the whole split)."""
    template: str | None = None
    """Prompt template (think, boxed, raw); None = the task's default."""
    selection: Literal["full", "one_shot"] = "full"
    """`full` data, or `one_shot`: every step trains on the same single example (RQ2)."""
    one_shot: OneShotConfig = Field(default_factory=OneShotConfig)
    """How the one example is chosen."""

    _task = field_validator("task")(checks.check_task)
    _split = field_validator("train_split")(_task_split)
    _template = field_validator("template")(checks.check_template)

    @field_validator("task_options")
    @classmethod
    def _task_accepts(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Options the task's constructor takes, with the values it needs (a `path` that exists)."""
        if "task" in info.data:
            checks.check_task_options(info.data["task"], options)
        return options

    @model_validator(mode="after")
    def _index_in_pool(self) -> "DataConfig":
        """`one_shot.index` inside the training pool, when its size is known without a user's file."""
        if self.selection == "one_shot" and self.one_shot.rule == "index":
            checks.check_pool_index(self.task, self.train_split, self.train_size, self.one_shot.index)
        return self


class RewardConfig(_Section):
    name: str = "ground_truth"
    """Reward condition (studykit.scoring.rewards: ground_truth, random, incorrect, format, majority_vote,
    self_certainty), or a reward plug-in: an import path `package.module:function` or an installed
    `studykit.rewards` entry point's name (studykit.scoring.plugins)."""
    format_gate: Bool = True
    """Pay only well-formatted completions, as in the paper's reward."""
    p: Num = Field(0.5, ge=0, le=1)
    """Bernoulli probability for `random` (Spurious Rewards uses 0.5)."""
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Keyword options of a reward plug-in, checked by its `Options` model or signature ({} for a shipped
    condition). In the config hash only when not empty."""

    _name = field_validator("name")(checks.check_reward)

    @field_validator("options")
    @classmethod
    def _plugin_accepts(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "name" not in info.data:
            return options
        return checks.check_plugin_options("reward", info.data["name"], options, REWARDS, "reward.p / format_gate")


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


class ContaminationConfig(_Section):
    """The contamination probe of the alignment notebook (studykit.probes.contamination). Thresholds are studykit's own:
    the paper (arXiv 2508.21188) tests contamination by prefix completion (after Wu et al. 2025, arXiv 2507.10532)
    but states no cut-off."""

    enabled: Bool = True
    """Run the probe in alignment runs, on every eval set (training runs never run it)."""
    fractions: list[Num] = Field(default_factory=lambda: [0.4, 0.6, 0.8], min_length=1)
    """Prefix fractions of each problem statement (by tokens, no template); each in (0, 1). The paper's probe
    uses 40/60/80% prefixes (Wu et al. 2025)."""
    answer_fractions: list[Num] = Field(default_factory=lambda: [0.6, 0.8], min_length=1)
    """Prefix fractions at which partial-prompt answer accuracy is measured: the model sees only that much of the
    statement and must give the whole problem's answer (Wu et al. 2025: 60% and 80%); each in (0, 1)."""
    label_fraction: Num = 0.6
    """The fraction whose exact match and partial-prompt answer accuracy decide the label (one of `fractions` and
    of `answer_fractions`; Wu et al.'s headline is 60%)."""
    em_threshold: Num = Field(0.1, ge=0, le=1)
    """`contaminated` when exact match at `label_fraction` >= this on the first eval set (studykit's choice: a
    model that never saw the text completes almost none exactly; Wu et al. report about 0 for clean Llama)."""
    answer_threshold: Num = Field(0.2, ge=0, le=1)
    """... or when partial-prompt answer accuracy at `label_fraction` >= this (studykit's choice, between Wu et
    al.'s 2.4% for clean Llama-3.1-8B and 53.6% for Qwen2.5-Math-7B on MATH-500 at 60%). Answering the FULL
    problem without reasoning (answer recall) is logged but never decides: a strong clean model does it too."""
    answer_max_new_tokens: Int = Field(512, ge=1)
    """Tokens generated past the true remainder's length for partial-prompt answer accuracy (room for a solution;
    the toy's continuations stop at its eos within a few dozen, and a model's positions cap it)."""
    limit: Int | None = Field(None, ge=1)
    """Probe the first `limit` problems of each eval set (None = as many as the eval set uses)."""
    max_remainder_tokens: Int = Field(256, ge=1)
    """Cap on the tokens generated per continuation (the remainder is cut to this many)."""
    recall_max_new_tokens: Int = Field(32, ge=1)
    """Tokens generated for answer recall (an answer, not a solution)."""
    batch_size: Int = Field(32, ge=1)
    """Rows per greedy `generate` call."""

    @model_validator(mode="after")
    def _fractions_fit(self) -> "ContaminationConfig":
        """Every fraction in (0, 1); label_fraction one of fractions and of answer_fractions."""
        for name in ("fractions", "answer_fractions"):
            for i, f in enumerate(getattr(self, name)):
                if not 0 < f < 1:
                    raise CheckError(f"got {f}; expected a number strictly between 0 and 1", f"{name}.{i}")
        for name in ("fractions", "answer_fractions"):
            if self.label_fraction not in getattr(self, name):
                raise CheckError(f"got {self.label_fraction}; expected one of {name} {getattr(self, name)}",
                                 "label_fraction")
        return self


class EvalConfig(_Section):
    sets: list[EvalSet] = Field(default_factory=lambda: [EvalSet()], min_length=1)
    """Evaluation sets (at least one; the first decides the alignment label); labels distinct."""
    every: Int = Field(20, ge=0)
    """Evaluate every N steps (also before step 1 and at the end; 0 = only those two)."""
    n_samples: Int = Field(16, ge=1)
    """Samples per problem for pass@k / avg@n."""
    ks: list[Int] = Field(default_factory=lambda: [1, 4, 16], min_length=1)
    """k values for pass@k (each <= n_samples)."""
    temperature: Num = Field(1.0, gt=0)
    """Sampling temperature at evaluation."""
    max_new_tokens: Int | None = Field(None, ge=1)
    """Response cap at evaluation (None = train.max_new_tokens)."""
    alignment_k: Int = Field(checks.ALIGNMENT_K_DEFAULT, ge=1)
    """Alignment rule: the k of pass@k that labels a model-task pair (largest eval k <= this is used, so at least
    the smallest of `ks`, and at most the largest: pass@max(ks) would be used under its name). The default, 16,
    means "the largest logged k up to 16" and is accepted whatever `ks` holds."""
    alignment_threshold: Num = Field(0.8, ge=0, le=1)
    """Alignment rule: `strong` when pass@alignment_k >= this, else `weak` (the paper's strong pairs have pass@k near 1)."""
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)
    """The contamination probe (alignment runs only): clean or contaminated, the label's second half."""

    @model_validator(mode="after")
    def _ks_fit(self) -> "EvalConfig":
        """Each k in 1..n_samples; alignment_k reaches a logged k (else the run's alignment tag is 'unmeasured');
        distinct eval-set labels (their metrics and artifacts would mix)."""
        checks.check_eval_ks(self.ks, self.n_samples, self.alignment_k, [s.label for s in self.sets])
        return self


class TrackingConfig(_Section):
    experiment: str | None = Field(None, pattern=SAFE_NAME)
    """MLflow experiment (also its artifact folder); None = the study name."""
    uri: str | None = None
    """Tracking URI; None = $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db. A database URI needs its driver."""
    checkpoint_dir: str = "outputs/checkpoints"
    """Where resumable checkpoints go (one folder per config hash); must not be a file."""
    resume: Bool = True
    """Continue an unfinished run of the same config from its last checkpoint."""
    sample_tables: Int = Field(4, ge=0)
    """How many steps log a sample table (prompt, completion, reward, correct)."""
    save_policy: Literal["auto", "adapter", "full", "none"] = "auto"
    """What a finished run keeps as its `policy/` artifact (studykit.policy.store): `adapter` (lora/qlora only),
    `full` weights + tokenizer (for lora: the adapter merged in; not qlora), `none`; `auto` = the adapter for
    lora/qlora, full weights for full fine-tuning up to 200M parameters, else nothing (tag `policy_saved` says why)."""

    parent_run: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    """MLflow run id of the study's parent run (tag `mlflow.parentRunId`), so the UI shows the study as a tree; set
    by `studykit study` for every cell, None for a single run (`studykit run`, a notebook opened by hand)."""
    source_name: str | None = None
    """What the run's `mlflow.source.name` tag names: the notebook it executes (the study runner and `studykit run`
    set the notebook's path, each notebook its own name); None = MLflow's guess (the kernel process)."""
    claim: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")
    """The study runner's token for this execution of the cell (tag `claim_token`): the runner ends and logs into
    only the run that carries its token; None outside a study."""

    _uri = field_validator("uri")(checks.check_tracking_uri)
    _folder = field_validator("checkpoint_dir")(checks.check_folder)


class RunConfig(_Section):
    study: str = Field("adhoc", pattern=SAFE_NAME)
    """Study name: the MLflow experiment, outputs/<study>/ and reports/<study>/ (a safe name)."""
    rq: Literal["alignment", "rq1", "rq2", "rq3", "ablation", "none"] = "none"
    """Research question the run belongs to."""
    claim: str = Field("ground_truth", pattern=SAFE_NAME)
    """Claim label used by the verdict table (e.g. random, one_shot, nsr); part of run and file names."""
    condition: str = Field("", pattern=SAFE_CONDITION)
    """Label of this condition (`<condition>@<ablation>` in an ablation); defaults to the claim."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _no_entry_point_clash(self) -> "RunConfig":
        """No installed distribution registers a shipped reward, estimator or task name as a plug-in (the name
        would be ambiguous), whichever names this config uses."""
        checks.check_no_clashes(ESTIMATORS)
        return self

    @model_validator(mode="after")
    def _eval_tasks_build(self) -> "RunConfig":
        """An eval set of another task than data.task is built without options (studykit.engine.trainer), so it must be a
        task that needs none (not `math` / `deepscaler`, which need a path)."""
        checks.check_eval_tasks(self.data.task, [es.task for es in self.eval.sets])
        return self

    @model_validator(mode="after")
    def _one_shot_source_repeats(self) -> "RunConfig":
        """historical_variance's source run (this recipe with full data) sees an example in a second epoch; checked
        when the source is this config's own baseline (no source_run / source_config_hash pinned)."""
        d, shot = self.data, self.data.one_shot
        if d.selection == "one_shot" and shot.rule == "historical_variance" and not shot.source_run \
                and not shot.source_config_hash and self.train.steps > 0:
            try:
                checks.check_one_shot_source(d.task, d.train_split, d.train_size, self.train.steps,
                                             self.train.prompts_per_step)
            except CheckError as err:
                raise CheckError(str(err), f"data.{err.key}") from None
        return self

    @model_validator(mode="after")
    def _sampler_can_sync(self) -> "RunConfig":
        """vLLM trains only adapters: full-weight sync into vLLM is not implemented."""
        if self.train.sampler == "vllm" and self.model.finetune == "full" and self.train.steps > 0:
            raise CheckError("got 'vllm' with model.finetune 'full'; expected model.finetune 'lora' or 'qlora' "
                                    "(full-weight sync into vLLM is not implemented), or train.sampler 'hf'",
                                    "train.sampler")
        return self

    @model_validator(mode="after")
    def _tis_for_quantised_vllm(self) -> "RunConfig":
        """vLLM + QLoRA samples from another model than the one trained: truncated importance sampling on unless
        `algo.tis_cap` was given (null included). Other pairings keep their hash: the field stays None."""
        a = self.algo
        if self.train.sampler == "vllm" and self.model.finetune == "qlora" and "tis_cap" not in a.model_fields_set \
                and a.old_logprobs == "recompute":
            a.tis_cap = TIS_CAP_QLORA_VLLM
        return self

    @model_validator(mode="after")
    def _policy_saving_fits(self) -> "RunConfig":
        """The kept policy must exist for the fine-tune: no adapter of a full fine-tune, no full qlora weights."""
        save, finetune = self.tracking.save_policy, self.model.finetune
        if save == "adapter" and finetune == "full":
            raise CheckError("got 'adapter' with model.finetune 'full' (a full fine-tune has no adapter); "
                                    "expected 'full', 'auto' or 'none', or model.finetune lora/qlora",
                                    "tracking.save_policy")
        if save == "full" and finetune == "qlora":
            raise CheckError("got 'full' with model.finetune 'qlora' (merging an adapter into a 4-bit base is "
                                    "lossy); expected 'adapter', 'auto' or 'none'", "tracking.save_policy")
        return self

    def config_hash(self) -> str:
        """Hash of everything that changes the result. Excluded: tracking options and the execution knobs that
        change memory or time, not the objective (checkpoint interval, micro-batch size, log-prob chunk, gradient
        checkpointing, vLLM sleep mode), so a run can resume with them changed; `algo.tis_cap` while it is None;
        `algo.allow_dynamic_sampling_with_reinforce` (a permission: `algo.dynamic_sampling` carries the effect);
        `model.label`; `eval.contamination` outside alignment runs (only they run the probe); empty plug-in options.
        A config with a plug-in adds its identity (`plugins()`), so editing the plug-in's file changes the hash."""
        payload = self.model_dump(mode="json", exclude={
            "tracking": True, "train": {"checkpoint_every", "micro_batch_size", "logprob_chunk"},
            "model": {"gradient_checkpointing"}, "algo": {"allow_dynamic_sampling_with_reinforce"}})
        payload["train"]["sampler_options"].pop("enable_sleep_mode", None)
        if self.rq != "alignment":  # only alignment runs probe contamination: a training run's result is unchanged
            del payload["eval"]["contamination"]
        if payload["algo"]["tis_cap"] is None:
            del payload["algo"]["tis_cap"]
        del payload["model"]["label"]  # a name, not a setting: two labels of one model are one run (refused twins)
        for section, key in (("reward", "options"), ("algo", "estimator_options")):
            if not payload[section][key]:  # a shipped name's configs keep the hashes they had before plug-ins
                del payload[section][key]
        plugins = self.plugins()
        if plugins:
            payload["plugins"] = plugins
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def plugins(self) -> dict[str, str]:
        """{kind: identity} of the plug-ins this config uses (studykit.infra.plugins), {} for shipped names only;
        logged as `plugin.<kind>` tags."""
        tasks = [self.data.task, *(es.task for es in self.eval.sets)]
        return checks.plugin_identities(self.reward.name, self.algo.estimator, ESTIMATORS, tasks)

    def run_name(self) -> str:
        model = self.model.shown.replace("toy:", "").split("/")[-1]
        return f"{self.claim}-{self.condition or self.claim}-{model}-{self.data.task}-s{self.train.seed}"

    def flat(self) -> dict[str, Any]:
        """Dotted-key params for MLflow."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out


def validate(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """A RunConfig from a plain dict; raises ConfigError naming each bad field, its value and what is allowed."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config ({source}): expected a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe(err, f"invalid config ({source}):", RunConfig)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a params file; ConfigError (naming the file) when it is missing, empty, not UTF-8 text, not
    YAML, repeats a key (with its line), or is not a mapping."""
    try:
        return read_params(path)
    except CheckError as err:
        raise ConfigError(str(err)) from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a run YAML (optionally deep-merged with overrides) and validate it."""
    return validate(deep_merge(load_yaml(path), overrides or {}), str(path))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in, mapping by mapping; a value that is an EMPTY mapping replaces the base's (so
    `task_options: {}` clears the base file's options instead of keeping them)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
    return out


class CompareSpec(BaseModel):
    """The verdict thresholds of a study (its `compare:` section); `studykit.analysis.report` applies them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    holds: Num = Field(0.7, ge=0)
    """A claim holds when its pass@1 gain is at least this fraction of ground-truth GRPO's."""
    partial: Num = Field(0.3, ge=0)
    """...partially holds at this fraction (at most `holds`); fails below."""
    min_effect: Num = Field(0.02, ge=0)
    """Ground-truth GRPO must gain at least this much pass@1, else the verdict is `n/a (gt flat)`."""
    axes: dict[str, list[str]] = Field(default_factory=dict)
    """Alignment axes of the alignment curve (`studykit.analysis.curve`): axis name -> grid model keys, one series
    each; empty = one series of every model with an alignment run on the task."""

    @model_validator(mode="after")
    def _ordered(self) -> "CompareSpec":
        """`partial` <= `holds` (otherwise no claim could be judged `partial`)."""
        if self.partial > self.holds:
            raise CheckError(f"got {self.partial}; expected at most holds={self.holds}", "partial")
        return self
