"""The sections of a run config (`model`, `data`, `reward`, `eval`, `tracking` and the contamination probe's),
their base class and the names they check against. `studykit.config.training` holds `algo` and `train`;
`studykit.config.schema` assembles them into `RunConfig` (see its docstring for the rules every section follows)."""


from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from studykit.config import validation as checks
from studykit.config.paramfile import SAFE_NAME, Bool, CheckError, Int, Num
from studykit.policy.sampling.power import ALPHA as POWER_ALPHA, BLOCKS as POWER_BLOCKS, MH_STEPS as POWER_MH_STEPS

REWARDS = ("ground_truth", "random", "incorrect", "format", "majority_vote", "self_certainty", "noisy_ground_truth")
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
    self_certainty, noisy_ground_truth), or a reward plug-in: an import path `package.module:function` or an installed
    `studykit.rewards` entry point's name (studykit.scoring.plugins)."""
    format_gate: Bool = True
    """Pay only well-formatted completions, as in the paper's reward."""
    p: Num = Field(0.5, ge=0, le=1)
    """Bernoulli probability for `random` (Spurious Rewards uses 0.5)."""
    false_negative: Num | None = Field(None, ge=0, le=1)
    """`noisy_ground_truth` only: probability that a correct completion is scored wrong (None = 0 there; refused with
    any other reward). "Pitfalls of Rule- and Model-based Verifiers" (arXiv 2505.22203) measures rule-based
    verifiers' recall at 0.86 on average, a false-negative rate of 0.14. Not in the config hash while None."""
    false_positive: Num | None = Field(None, ge=0, le=1)
    """`noisy_ground_truth` only: probability that a wrong completion is scored right (None = 0 there; refused with
    any other reward). Not in the config hash while None."""
    votes: Int | None = Field(None, ge=2)
    """`majority_vote` only: completions sampled per prompt to vote on; the label is their majority and the first
    `train.group_size` of them are trained on (TTRL, arXiv 2504.16084: 64 votes, 32 trained). None = group size
    (every voter is trained on); fewer than the group size is refused. Not in the config hash while None; a value
    equal to the group size is stored as None (the same run)."""
    options: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Keyword options of a reward plug-in, checked by its `Options` model or signature ({} for a shipped
    condition). In the config hash only when not empty."""

    _name = field_validator("name")(checks.check_reward)

    @model_validator(mode="after")
    def _options_of_the_condition(self) -> "RewardConfig":
        """`false_negative` / `false_positive` only with noisy_ground_truth (None there becomes 0), `votes` only
        with majority_vote: elsewhere they would be ignored."""
        noisy = self.name == "noisy_ground_truth"
        for key in ("false_negative", "false_positive"):
            value = getattr(self, key)
            if value is not None and not noisy:
                raise CheckError(f"got {value} with reward.name {self.name!r}; expected it only with "
                                 "'noisy_ground_truth' (no other reward flips labels)", key)
            if value is None and noisy:
                object.__setattr__(self, key, 0.0)  # no re-validation loop: 0.0 is in range
        if self.votes is not None and self.name != "majority_vote":
            raise CheckError(f"got {self.votes} with reward.name {self.name!r}; expected it only with "
                             "'majority_vote' (only a vote uses extra samples)", "votes")
        return self

    @field_validator("options")
    @classmethod
    def _plugin_accepts(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "name" not in info.data:
            return options
        return checks.check_plugin_options("reward", info.data["name"], options, REWARDS, "reward.p / format_gate")


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


class PowerConfig(_Section):
    """Power sampling at evaluation (studykit.policy.sampling.power, Karan & Du 2025, arXiv 2510.14901)."""

    alpha: Num = Field(POWER_ALPHA, ge=1)
    """Power of the target p^alpha; the proposal is the base model at temperature 1/alpha (the paper: 4)."""
    blocks: Int = Field(POWER_BLOCKS, ge=1)
    """Blocks the response is built in (the paper: 16)."""
    mh_steps: Int = Field(POWER_MH_STEPS, ge=0)
    """Metropolis-Hastings steps per block (the paper: 10)."""


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
    sampler: Literal["plain", "power"] = "plain"
    """`plain`: evaluations sample from the policy with the train.sampler backend. `power`: an evaluation-only run
    (train.steps 0, over the train.sampler backend, hf or vllm): step 0 is the plain evaluation of the base model,
    step 1 the same problems with power sampling (`eval.power`), so the verdict's gain is power's pass@1 over plain's
    (studykit.engine.trainer). In the config hash only when `power`."""
    power: PowerConfig = Field(default_factory=PowerConfig)
    """Power sampling's options (only with sampler `power`)."""

    @model_validator(mode="after")
    def _power_options_used(self) -> "EvalConfig":
        """`eval.power` set with the plain sampler would be ignored: refused."""
        if self.sampler == "plain" and self.power != PowerConfig():  # the defaults written out (a dump) pass
            changed = sorted(k for k, v in self.power if v != PowerConfig.model_fields[k].default)
            raise CheckError(f"got {changed} with eval.sampler 'plain'; expected eval.sampler 'power' (the options "
                             "are power sampling's)", "power")
        return self

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


