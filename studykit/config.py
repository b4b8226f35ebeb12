"""Typed run and study configuration.

A run YAML has the sections below (`model`, `data`, `reward`, `algo`, `train`, `eval`, `tracking`, plus the
labels `study`, `rq`, `claim`, `condition`); the notebooks' parameters cells hold the same sections one to one.
Defaults follow the paper's recipe (arXiv 2508.21188, section 3: verl GRPO, clip 0.2/0.28, token-mean loss,
no KL, dynamic sampling, T=1.0, 16 samples per prompt, lr 1e-6) except where a field says it departs.
The toy-world values live in `params/toy/` with a comment per departure.
An unknown key or a bad value raises `ConfigError` naming the field and what was allowed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REWARDS = ("ground_truth", "random", "incorrect", "format", "majority_vote", "self_certainty")
ESTIMATORS = ("grpo", "dr_grpo", "nsr", "psr", "nsr_reinforce", "psr_reinforce", "w_reinforce")
REINFORCE_ESTIMATORS = ("nsr_reinforce", "psr_reinforce", "w_reinforce")  # Zhu et al. 2025: no group baseline


class ConfigError(ValueError):
    """A params file or dict that does not validate; the message names every bad field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class ModelConfig(_Section):
    name: str = "toy:strong"
    """Hub id, local folder, or `toy:<preset>` (strong, weak-method, weak-skill, custom)."""
    finetune: Literal["full", "lora", "qlora"] = "full"
    """`full` for tiny models; `lora`; `qlora` = 4-bit NF4 base + LoRA. The paper fine-tunes fully (departure on GPU)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Compute dtype of the forward passes, and the dtype vLLM serves the base in (float32 on CPU). Trainable
    parameters and optimiser state are float32 whatever it is: LoRA adapters are fp32, and a bf16 `full`
    fine-tune keeps fp32 master weights under bf16 autocast; `full` + float16 is refused."""
    lora_rank: int = Field(16, ge=1)
    """LoRA rank r."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scaling alpha (alpha / r multiplies the update)."""
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA input."""
    target_modules: str | list[str] = "all-linear"
    """Modules that get adapters; `all-linear` is peft's every-linear-layer shortcut."""
    toy: dict[str, Any] = Field(default_factory=dict)
    """Knobs for `toy:custom` (see studykit.toy.ToyRecipe); ignored for other names."""
    gradient_checkpointing: bool | None = None
    """Recompute each decoder layer's activations in backward (less memory, about a third more compute; the
    gradients are the same). None = auto: on for non-toy models of at least 100M parameters, off for the toy.
    Not in the config hash."""


class EvalSet(_Section):
    task: str = "toy"
    """Task registry name (studykit.tasks.names())."""
    split: str = "test"
    """Split passed to the task's `load`."""
    limit: int | None = Field(None, ge=1)
    """Use the first `limit` problems (None = all)."""
    name: str | None = None
    """Label in metric names `eval/<name>/...`; defaults to the task name."""

    @property
    def label(self) -> str:
        return self.name or self.task.replace(":", "_")


class OneShotConfig(_Section):
    rule: Literal["historical_variance", "base_variance", "random", "index"] = "historical_variance"
    """How the single example is chosen (1-shot RLVR, Wang et al. 2025, ranks by historical variance)."""
    index: int = Field(0, ge=0)
    """Training-pool index for rule `index`."""
    source_run: str | None = None
    """MLflow run id of the full-data run whose per-example accuracy history ranks examples (historical_variance);
    None = the FINISHED run with `source_config_hash`."""
    source_config_hash: str | None = None
    """Config hash of that full-data ground-truth run; a study sets it to its baseline cell of the same model, task,
    seed and ablation. None = this config with full data and ground truth's labels (studykit.one_shot)."""
    n_samples: int = Field(16, ge=2)
    """Samples per example for `base_variance`."""
    pool: int = Field(64, ge=1)
    """How many training examples are scored for `base_variance` / considered by `random`."""


class DataConfig(_Section):
    task: str = "toy"
    """Training task (registry name)."""
    task_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword options for the task (e.g. `path:` for `math`)."""
    train_split: str = "train"
    """Split to train on."""
    train_size: int | None = Field(None, ge=1)
    """Cap on training problems (None = the whole split)."""
    template: str | None = None
    """Prompt template (think, boxed, raw); None = the task's default."""
    selection: Literal["full", "one_shot"] = "full"
    """`full` data, or `one_shot`: every step trains on the same single example (RQ2)."""
    one_shot: OneShotConfig = Field(default_factory=OneShotConfig)
    """How the one example is chosen."""


class RewardConfig(_Section):
    name: Literal[REWARDS] = "ground_truth"  # type: ignore[valid-type]
    """Reward condition (studykit.rewards)."""
    format_gate: bool = True
    """Pay only well-formatted completions, as in the paper's reward."""
    p: float = Field(0.5, ge=0, le=1)
    """Bernoulli probability for `random` (Spurious Rewards uses 0.5)."""


class AlgoConfig(_Section):
    estimator: Literal[ESTIMATORS] = "grpo"  # type: ignore[valid-type]
    """Advantage estimator (studykit.grpo.compute_advantages), always on the training reward. `nsr`/`psr`: the
    paper's GRPO advantages on samples with reward < 1 / > 0; `nsr_reinforce`/`psr_reinforce`/`w_reinforce`:
    Zhu et al. 2025's own -1 / +1 / (+lam, -1) objectives without a baseline."""
    lam: float = Field(0.1, ge=0)
    """W-REINFORCE's weight on positive samples (Zhu et al. 2025 use 0.1)."""
    clip_low: float = Field(0.2, ge=0)
    """Lower ratio clip (PPO / the paper: 0.2)."""
    clip_high: float = Field(0.28, ge=0)
    """Upper ratio clip ("clip-higher", DAPO / the paper: 0.28)."""
    clip: bool = True
    """Turn clipping off entirely (ablation of the random-reward mechanism)."""
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    """Loss aggregation (the paper: token-mean)."""
    kl_coef: float = Field(0.0, ge=0)
    """KL penalty to the initial policy (the paper: none), k3 estimator per token, logged as `train/kl_ref`. The
    reference is the base with the adapter disabled for lora/qlora (no extra memory) and a frozen copy of the
    initial model for full fine-tuning (refused above studykit.update.REF_COPY_MAX_PARAMS parameters)."""
    entropy_coef: float = Field(0.0, ge=0)
    """Entropy bonus (the paper: none)."""
    dynamic_sampling: bool = True
    """Drop groups whose rewards all agree (DAPO; the paper keeps it on). When not set it is on for the GRPO
    family and OFF for Zhu et al.'s estimators (an all-wrong group's -1 everywhere is their training signal)."""
    max_gen_batches: int = Field(2, ge=1)
    """Generation batches drawn per step to refill after filtering."""
    old_logprobs: Literal["recompute", "sampler"] = "recompute"
    """Old log-probs from the training model (as verl) or the sampler's."""
    tis_cap: float | None = Field(None, ge=1)
    """Truncated importance sampling for the sampler/trainer mismatch (verl's and TRL's TIS): the policy-gradient
    term of each token is weighted by min(exp(old_logprob - sampler_logprob), tis_cap). None = off (the paper).
    Needs old_logprobs `recompute`. In the config hash only when set."""

    @model_validator(mode="before")
    @classmethod
    def _filter_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dynamic_sampling" not in data:
            data = {**data, "dynamic_sampling": data.get("estimator", "grpo") not in REINFORCE_ESTIMATORS}
        return data

    @model_validator(mode="after")
    def _no_ignored_settings(self) -> "AlgoConfig":
        if self.tis_cap is not None and self.old_logprobs == "sampler":
            raise ValueError("algo.tis_cap needs algo.old_logprobs 'recompute': with the sampler's log-probs as old "
                             "log-probs every importance weight is 1")
        return self


class TrainConfig(_Section):
    steps: int = Field(300, ge=0)
    """Optimiser steps (the paper: 300)."""
    prompts_per_step: int = Field(128, ge=1)
    """Prompts per step (the paper: 128)."""
    group_size: int = Field(16, ge=2)
    """Samples per prompt G (the paper: 16)."""
    mini_batches: int = Field(2, ge=1)
    """Updates per rollout batch (the paper: 128 prompts / mini-batch 64 = 2)."""
    epochs: int = Field(1, ge=1)
    """Passes over the rollout batch."""
    lr: float = Field(1e-6, gt=0)
    """Learning rate (the paper: 1e-6, full fine-tuning)."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW weight decay (the paper's verl recipe: 0.1)."""
    warmup_steps: int = Field(10, ge=0)
    """Linear LR warm-up steps (the paper: 10)."""
    grad_clip: float = Field(1.0, gt=0)
    """Gradient-norm clip."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature (the paper: 1.0)."""
    top_p: float = Field(1.0, gt=0, le=1)
    """Nucleus sampling."""
    max_new_tokens: int = Field(1024, ge=1)
    """Response length cap (departure: the paper allows longer responses)."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Sequences per forward/backward pass; a mini-batch's gradients are accumulated over its micro-batches and
    equal the whole mini-batch's for every `algo.agg` (None = the whole mini-batch in one pass). Not in the
    config hash."""
    logprob_chunk: int = Field(1024, ge=1)
    """Token rows whose full-vocabulary log-softmax is held at once when computing log-probs (memory about
    3 x logprob_chunk x vocab x 4 bytes). Not in the config hash."""
    sampler: Literal["hf", "vllm"] = "hf"
    """Rollout backend."""
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    """Backend options (e.g. gpu_memory_utilization, max_model_len for vllm). vllm's `enable_sleep_mode: true`
    puts the engine to sleep during each update (CUDA/ROCm/XPU only; not in the config hash)."""
    seed: int = 0
    """Seed for data order, sampling, rewards and initialisation."""
    checkpoint_every: int = Field(0, ge=0)
    """Save a resumable checkpoint every N steps and at the final step (0 = only at the final step)."""
    threads: int = Field(1, ge=1)
    """torch threads in this process (one per worker: cores are shared)."""

    @model_validator(mode="after")
    def _no_ignored_options(self) -> "TrainConfig":
        if "enable_sleep_mode" in self.sampler_options and self.sampler != "vllm":
            raise ValueError("train.sampler_options.enable_sleep_mode is a vllm sampler option; the hf sampler is "
                             "the training model itself and has nothing to put to sleep")
        return self


class EvalConfig(_Section):
    sets: list[EvalSet] = Field(default_factory=lambda: [EvalSet()])
    """Evaluation sets."""
    every: int = Field(20, ge=0)
    """Evaluate every N steps (also before step 1 and at the end; 0 = only those two)."""
    n_samples: int = Field(16, ge=1)
    """Samples per problem for pass@k / avg@n."""
    ks: list[int] = Field(default_factory=lambda: [1, 4, 16])
    """k values for pass@k (each <= n_samples)."""
    temperature: float = Field(1.0, gt=0)
    """Sampling temperature at evaluation."""
    max_new_tokens: int | None = Field(None, ge=1)
    """Response cap at evaluation (None = train.max_new_tokens)."""
    alignment_k: int = Field(16, ge=1)
    """Alignment rule: the k of pass@k that labels a model-task pair (largest eval k <= this is used)."""
    alignment_threshold: float = Field(0.8, ge=0, le=1)
    """Alignment rule: `strong` when pass@alignment_k >= this, else `weak` (the paper's strong pairs have pass@k near 1)."""

    @model_validator(mode="after")
    def _ks_fit(self) -> "EvalConfig":
        bad = [k for k in self.ks if k < 1 or k > self.n_samples]
        if bad:
            raise ValueError(f"eval.ks {bad} must be between 1 and eval.n_samples={self.n_samples}")
        return self


class TrackingConfig(_Section):
    experiment: str | None = None
    """MLflow experiment; None = the study name."""
    uri: str | None = None
    """Tracking URI; None = $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db."""
    checkpoint_dir: str = "outputs/checkpoints"
    """Where resumable checkpoints go (one folder per config hash)."""
    resume: bool = True
    """Continue an unfinished run of the same config from its last checkpoint."""
    sample_tables: int = Field(4, ge=0)
    """How many steps log a sample table (prompt, completion, reward, correct)."""
    save_policy: Literal["auto", "adapter", "full", "none"] = "auto"
    """What a finished run keeps as its `policy/` artifact (studykit.policy_store): `adapter` (lora/qlora only),
    `full` weights + tokenizer (for lora: the adapter merged in; not qlora), `none`; `auto` = the adapter for
    lora/qlora, full weights for full fine-tuning up to 200M parameters, else nothing (tag `policy_saved` says why)."""


class RunConfig(_Section):
    study: str = "adhoc"
    """Study name: the MLflow experiment and reports/<study>/."""
    rq: Literal["alignment", "rq1", "rq2", "rq3", "ablation", "none"] = "none"
    """Research question the run belongs to."""
    claim: str = "ground_truth"
    """Claim label used by the verdict table (e.g. random, one_shot, nsr)."""
    condition: str = ""
    """Free label of this condition; defaults to the claim."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    algo: AlgoConfig = Field(default_factory=AlgoConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _sampler_can_sync(self) -> "RunConfig":
        if self.train.sampler == "vllm" and self.model.finetune == "full" and self.train.steps > 0:
            raise ValueError("train.sampler 'vllm' needs model.finetune 'lora' or 'qlora' (full-weight sync into vLLM "
                             "is not implemented); use train.sampler 'hf' for full fine-tuning")
        return self

    @model_validator(mode="after")
    def _policy_saving_fits(self) -> "RunConfig":
        save, finetune = self.tracking.save_policy, self.model.finetune
        if save == "adapter" and finetune == "full":
            raise ValueError("tracking.save_policy 'adapter' needs model.finetune 'lora' or 'qlora' (a full fine-tune "
                             "has no adapter); use 'full', 'auto' or 'none'")
        if save == "full" and finetune == "qlora":
            raise ValueError("tracking.save_policy 'full' is not supported with model.finetune 'qlora' (merging an "
                             "adapter into a 4-bit base is lossy); use 'adapter', 'auto' or 'none'")
        return self

    def config_hash(self) -> str:
        """Hash of everything that changes the result. Excluded: tracking options and the execution knobs that
        change memory or time, not the objective (checkpoint interval, micro-batch size, log-prob chunk, gradient
        checkpointing, vLLM sleep mode), so a run can resume with them changed; `algo.tis_cap` while it is None."""
        payload = self.model_dump(mode="json", exclude={
            "tracking": True, "train": {"checkpoint_every", "micro_batch_size", "logprob_chunk"},
            "model": {"gradient_checkpointing"}})
        payload["train"]["sampler_options"].pop("enable_sleep_mode", None)
        if payload["algo"]["tis_cap"] is None:
            del payload["algo"]["tis_cap"]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def run_name(self) -> str:
        model = self.model.name.replace("toy:", "").split("/")[-1]
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


def _describe(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "literal_error":
            msg = f"got {e.get('input')!r}; {msg.replace('Input should be', 'expected')}"
        lines.append(f"  {field}: {msg}")
    return "\n".join(lines)


def validate(data: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """A RunConfig from a plain dict; raises ConfigError naming each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config ({source}): expected a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a run YAML (optionally deep-merged with overrides) and validate it."""
    return validate(deep_merge(load_yaml(path), overrides or {}), str(path))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class CompareSpec(BaseModel):
    """The verdict thresholds of a study (its `compare:` section); `studykit.analysis` applies them."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    holds: float = Field(0.7, ge=0)
    """A claim holds when its pass@1 gain is at least this fraction of ground-truth GRPO's."""
    partial: float = Field(0.3, ge=0)
    """...partially holds at this fraction; fails below."""
    min_effect: float = Field(0.02, ge=0)
    """Ground-truth GRPO must gain at least this much pass@1, else the verdict is `n/a (gt flat)`."""
