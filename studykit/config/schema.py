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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from studykit.config import validation as checks
from studykit.config.paramfile import SAFE_NAME, CheckError, Num, describe, read_params

from studykit.config.sections import (  # noqa: F401 (the sections, public here too)
    ESTIMATORS, REINFORCE_ESTIMATORS, REWARDS, SAFE_CONDITION, ConfigError, ContaminationConfig, DataConfig, EvalConfig,
    EvalSet, ModelConfig, OneShotConfig, RewardConfig, TrackingConfig, _Section,
)
from studykit.config.training import TIS_CAP_QLORA_VLLM, AlgoConfig, TrainConfig  # noqa: F401 (public here too)


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
    def _votes_cover_the_group(self) -> "RunConfig":
        """`reward.votes` (majority_vote) at least `train.group_size`: the trained group is the first group_size
        voters. Equal to it is today's behaviour, stored as None (one run, one hash)."""
        votes = self.reward.votes
        if votes is not None and votes < self.train.group_size:
            raise CheckError(f"got {votes} with train.group_size {self.train.group_size}; expected at least the group "
                             "size (the trained completions are the first group_size voters)", "reward.votes")
        if votes is not None and votes == self.train.group_size:
            object.__setattr__(self.reward, "votes", None)
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
    def _power_is_evaluation_only(self) -> "RunConfig":
        """eval.sampler 'power': no training steps (its verdict is power's gain over plain sampling of one base model),
        not an alignment run (the probe samples plainly); over the train.sampler backend, hf or vllm."""
        if self.eval.sampler != "power":
            return self
        if self.train.steps != 0:
            raise CheckError(f"got 'power' with train.steps {self.train.steps}; expected train.steps 0 (power "
                             "sampling is evaluation-only: step 0 is plain sampling, step 1 power sampling of the "
                             "same base model)", "eval.sampler")
        if self.rq == "alignment":
            raise CheckError("got 'power' in an alignment run; expected 'plain' (the alignment probe measures "
                             "plain sampling)", "eval.sampler")
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
        `model.label`; the reward fields `false_negative`, `false_positive` and `votes` while None;
        `eval.contamination` outside alignment runs (only they run the probe); empty plug-in options;
        `eval.sampler` and `eval.power` while the sampler is `plain`.
        A config with a plug-in adds its identity (`plugins()`), so editing the plug-in's file changes the hash."""
        payload = self.model_dump(mode="json", exclude={
            "tracking": True, "train": {"checkpoint_every", "micro_batch_size", "logprob_chunk"},
            "model": {"gradient_checkpointing"}, "algo": {"allow_dynamic_sampling_with_reinforce"}})
        payload["train"]["sampler_options"].pop("enable_sleep_mode", None)
        if self.rq != "alignment":  # only alignment runs probe contamination: a training run's result is unchanged
            del payload["eval"]["contamination"]
        if payload["eval"]["sampler"] == "plain":  # configs without power sampling keep the hashes they had
            del payload["eval"]["sampler"], payload["eval"]["power"]
        if payload["algo"]["tis_cap"] is None:
            del payload["algo"]["tis_cap"]
        for key in ("false_negative", "false_positive", "votes"):  # newer reward fields: old configs keep their hashes
            if payload["reward"][key] is None:
                del payload["reward"][key]
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


PREDICTIONS = ("holds-when-strong", "holds-everywhere", "fails-everywhere", "holds-when-weak", "none")


class ClaimCard(BaseModel):
    """What a claim says, who made it and what it predicts: the verdict report checks the prediction per alignment
    regime (`studykit.analysis.claim_cards`). Shipped cards: `studykit/data/claims/shipped.yaml`; a study
    condition's `card:` replaces or adds one."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    text: str = Field(min_length=1, max_length=2000)
    """The claim in one or two sentences."""
    source: str = Field(min_length=1, max_length=500)
    """Who made it (paper, arXiv id, your lab)."""
    predicts: Literal[PREDICTIONS] = "none"  # type: ignore[valid-type]
    """Where it should hold: `holds-when-strong` (the paper's reading of the shortcut claims), `holds-everywhere`,
    `fails-everywhere`, `holds-when-weak`, or `none` (a contrast condition: no prediction to check)."""


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
