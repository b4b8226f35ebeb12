"""A RunConfig in verl 0.9.1's terms: the parquet rows of its RL dataset and the Hydra overrides of `main_ppo`.

Pure (no MLflow, no verl import). Keys checked against verl 0.9.1's `trainer/config/_generated_ppo_trainer.yaml`.
`refusals(cfg)` names every setting that verl cannot run as studykit would; `export` stops on any of them.
`departures(cfg)` names what verl does differently although the setting is translated (written into the launch script
and the manifest, and printed by the export).

Choices:
- `data_source` is `studykit/<task>` for training rows and `studykit/<task>/<eval set>` for evaluation rows, so verl
  groups its validation metrics by studykit's eval set (`val-core/<data_source>/acc/...`).
- The prompt is one user message with studykit's chat instruction for the template (studykit.tasks.templates), which
  verl renders with the model's chat template, as studykit does for a tokenizer that has one. `raw` passes the bare
  prompt.
- Evaluation rows carry ground truth without the format gate: they measure correctness, whatever the training signal.
- `actor.clip_ratio_c` is set far above any ratio: studykit's loss has no dual-clip bound (studykit.engine.grpo), verl's
  default (3.0) would add one (verl refuses to switch it off: it asserts clip_ratio_c > 1; listed in departures).
- Dynamic sampling: `algorithm.filter_groups.metric=reward` is verl 0.9.1's canonical name (v1 replay buffer,
  FILTER_GROUPS_REWARD_METRIC): it reads the summed `rm_scores`, i.e. compute_score's `score`, the training reward
  studykit filters on. Any other name is looked up in the reward's extra info, where studykit returns no such key
  (`seq_final_reward` is the old DAPO recipe's name, absent from 0.9.1). Only the v1 trainer reads filter_groups
  (main_ppo_v0 ignores it), so `trainer.use_v1=True` is pinned.
- `data.filter_overlong_prompts=False`: the export measures every prompt and sets `data.max_prompt_length` above
  the longest (studykit.integrations.verl_prompts), so verl drops no row without a word.
- LoRA needs no `rollout.load_format=safetensors` in 0.9.1: vLLM starts from dummy weights and the sync trainer
  sends the base weights once before the first validation (PPOTrainerSync.on_init_end, engine_workers base sync);
  only `rollout.layered_summon=True`, which the export leaves off, would need it (fsdp_utils.collect_lora_params).
- Plug-ins (issue 22): studykit.integrations.verl_plugins (a per-completion reward plug-in through compute_score, an
  estimator plug-in through verl's registry; task plug-ins refused).
"""

from __future__ import annotations

import json
from typing import Any

from studykit.config.schema import REINFORCE_ESTIMATORS, RunConfig
from studykit.scoring.rewards import MATH_TASKS
from ..tasks import Problem
from ..tasks.templates import _CHAT_INSTRUCTION, TEMPLATES
from . import verl_plugins
from .verl import refusal

# Estimators verl 0.9.1 lacks; studykit.integrations.verl_estimators registers them under these names.
CUSTOM_ESTIMATORS = {name: f"studykit_{name}" for name in ("nsr", "psr", *REINFORCE_ESTIMATORS)}
ESTIMATORS_MODULE = "studykit.integrations.verl_estimators"
LAM_ENV = "STUDYKIT_W_REINFORCE_LAM"
SAMPLER_OPTIONS = {"gpu_memory_utilization": "actor_rollout_ref.rollout.gpu_memory_utilization",
                   "max_model_len": "actor_rollout_ref.rollout.max_model_len"}
NO_DUAL_CLIP = 1.0e4


def ability(task: str) -> str:
    return "math" if task in MATH_TASKS else task.split(":")[0]


def data_source(task: str, eval_set: str | None = None) -> str:
    return f"studykit/{task}" + (f"/{eval_set}" if eval_set else "")


def user_message(problem: Problem, template: str) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; expected one of {sorted(TEMPLATES)}")
    return problem.prompt if template == "raw" else _CHAT_INSTRUCTION[template].format(prompt=problem.prompt)


def reward_info(cfg: RunConfig, evaluation: bool) -> dict[str, Any]:
    if evaluation:
        return {"name": "ground_truth", "format_gate": False, "p": 0.5, "seed": cfg.train.seed}
    rates = ({"false_negative": cfg.reward.false_negative, "false_positive": cfg.reward.false_positive}
             if cfg.reward.name == "noisy_ground_truth" else {})
    return {"name": cfg.reward.name, "format_gate": cfg.reward.format_gate, "p": cfg.reward.p, "seed": cfg.train.seed,
            **rates, **verl_plugins.reward_fields(cfg)}


def row(problem: Problem, index: int, *, task: str, template: str, source: str, reward: dict[str, Any],
        split: str, timeout_s: float | None) -> dict[str, Any]:
    """One record of verl's RL dataset schema (data_source, prompt, ability, reward_model, extra_info)."""
    meta = {k: v for k, v in problem.meta.items()}
    return {
        "data_source": source,
        "prompt": [{"role": "user", "content": user_message(problem, template)}],
        "ability": ability(task),
        "reward_model": {"style": "rule", "ground_truth": problem.answer},
        "extra_info": {"split": split, "index": index, "problem_id": problem.id, "question": problem.prompt,
                       "meta": json.dumps(meta, sort_keys=True, default=str), "reward": reward,
                       "verify_timeout_s": timeout_s},
    }


def verify_timeout(cfg: RunConfig, task: str) -> float | None:
    opts = cfg.data.task_options if task == cfg.data.task else {}
    return float(opts["timeout_s"]) if task in MATH_TASKS and "timeout_s" in opts else None


def refusals(cfg: RunConfig) -> list[str]:
    """Each setting of `cfg` that cannot be translated, with the field name and why."""
    out: list[str] = []
    m, a, t, e = cfg.model, cfg.algo, cfg.train, cfg.eval
    if e.sampler == "power":
        out.append("eval.sampler 'power': power sampling is evaluation-only (no training) and runs in studykit's own "
                   "loop over its hf or vllm sampler, not in verl")
    elif cfg.rq == "alignment" or t.steps == 0:
        out.append(f"rq {cfg.rq!r} / train.steps {t.steps}: an alignment measurement (no training) runs in "
                   "studykit's own notebook, not in verl")
    if m.name.startswith(("toy:", "runs:/")):
        out.append(f"model.name {m.name!r}: verl loads a hub id or a local Hugging Face folder (toy models and run "
                   "artifacts are studykit's own)")
    if m.finetune == "qlora":
        out.append("model.finetune 'qlora': verl 0.9.1 trains no 4-bit base; use 'lora' or 'full'")
    if m.lora_dropout:
        out.append(f"model.lora_dropout {m.lora_dropout}: verl 0.9.1 has no LoRA dropout setting; use 0")
    if m.dtype != "bfloat16":
        out.append(f"model.dtype {m.dtype!r}: verl's FSDP actor and vLLM rollout compute in bfloat16 here; "
                   "use 'bfloat16'")
    out += verl_plugins.refusals(cfg)
    why = None if "reward" in cfg.plugins() else refusal(cfg.reward.name)
    if why:
        out.append(f"reward.name: {why}")
    if not a.clip:
        out.append("algo.clip false: verl always clips the ratio (clip_ratio_low/high)")
    if a.old_logprobs != "recompute":
        out.append("algo.old_logprobs 'sampler': verl recomputes old log-probs with the actor; use 'recompute'")
    if a.tis_cap is not None:
        out.append(f"algo.tis_cap {a.tis_cap}: not translated (verl's rollout_correction is a different "
                   "mechanism); unset it")
    if t.prompts_per_step % t.mini_batches:
        out.append(f"train.mini_batches {t.mini_batches}: must divide train.prompts_per_step "
                   f"{t.prompts_per_step} (verl's ppo_mini_batch_size counts prompts)")
    for key in t.sampler_options:
        if key not in SAMPLER_OPTIONS and key != "enable_sleep_mode":
            out.append(f"train.sampler_options.{key}: no verl setting; translated are "
                       f"{', '.join([*SAMPLER_OPTIONS, 'enable_sleep_mode'])}")
    if e.max_new_tokens is not None and e.max_new_tokens != t.max_new_tokens:
        out.append(f"eval.max_new_tokens {e.max_new_tokens}: verl uses one response length "
                   f"(train.max_new_tokens {t.max_new_tokens}) for training and validation")
    if cfg.data.selection == "one_shot":
        out.append("data.selection 'one_shot': the example is chosen inside studykit's loop (from a base model's or "
                   "an earlier run's accuracy); not exported")
    return out


def departures(cfg: RunConfig) -> list[str]:
    """What verl does differently from studykit's loop although the setting is translated."""
    out = ["verl samples with its own seeds (vLLM rollout seed, data.seed for the order): runs are not "
           "sample-for-sample comparable with studykit's loop"]
    if cfg.algo.dynamic_sampling:
        out.append(f"algo.max_gen_batches {cfg.algo.max_gen_batches}: verl 0.9.1's replay buffer refills filtered "
                   "groups until the batch is full (it has no cap; max_num_gen_batches is ignored by its V1 trainer)")
    if cfg.reward.name in ("random", "noisy_ground_truth"):
        out.append(f"reward {cfg.reward.name!r}: each completion's draw is seeded by the run seed, problem id and "
                   "completion text (studykit.integrations.verl.completion_rng), not by the order of calls, so "
                   "identical completions of one problem share a draw")
    out.append(f"actor.clip_ratio_c {NO_DUAL_CLIP:g}: verl's dual-clip bound cannot be switched off (it asserts "
               f"clip_ratio_c > 1); set this high it binds only where a negative-advantage token's ratio exceeds "
               f"{NO_DUAL_CLIP:g}, while studykit's loss has no such bound")
    out.append("tracking.save_policy: the run gets no `policy/` artifact; verl keeps checkpoints under "
               "trainer.default_local_dir")
    return out + verl_plugins.departures(cfg)


def estimator_overrides(cfg: RunConfig) -> list[str]:
    est = cfg.algo.estimator
    if "estimator" in cfg.plugins():
        return verl_plugins.estimator_overrides(cfg)[:1]
    if est in CUSTOM_ESTIMATORS:
        return [f"algorithm.adv_estimator={CUSTOM_ESTIMATORS[est]}"]
    return ["algorithm.adv_estimator=grpo", f"algorithm.norm_adv_by_std_in_grpo={est != 'dr_grpo'}"]


def overrides(cfg: RunConfig, *, experiment: str, checkpoint_dir: str) -> list[str]:
    """Hydra overrides for `python -m verl.trainer.main_ppo` (paths of the data files come from the launch
    script). Raises ValueError listing `refusals(cfg)` when there are any."""
    bad = refusals(cfg)
    if bad:
        raise ValueError("cannot translate to verl:\n  - " + "\n  - ".join(bad))
    m, a, t, e = cfg.model, cfg.algo, cfg.train, cfg.eval
    actor, rollout = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    micro = t.micro_batch_size or 4
    every = e.every if e.every else t.steps  # studykit: step 0 and the end; verl validates at the last step
    out = [
        *estimator_overrides(cfg),
        "algorithm.use_kl_in_reward=False", "algorithm.kl_ctrl.kl_coef=0.0",
        f"algorithm.filter_groups.enable={a.dynamic_sampling}", "algorithm.filter_groups.metric=reward",
        f"data.train_batch_size={t.prompts_per_step}", f"data.max_response_length={t.max_new_tokens}",
        f"data.seed={t.seed}", "data.prompt_key=prompt", "data.filter_overlong_prompts=False",
        "trainer.use_v1=True",  # the v1 trainer is the one that reads algorithm.filter_groups (module docstring)
        f"actor_rollout_ref.model.path={m.name}",
        f"actor_rollout_ref.model.lora_rank={m.lora_rank if m.finetune == 'lora' else 0}",
        f"actor_rollout_ref.model.lora_alpha={m.lora_alpha}",
        "actor_rollout_ref.model.target_modules=" + (m.target_modules if isinstance(m.target_modules, str)
                                                      else "[" + ",".join(m.target_modules) + "]"),
        f"actor_rollout_ref.model.enable_gradient_checkpointing={m.gradient_checkpointing is not False}",
        f"{actor}.optim.lr={t.lr}", f"{actor}.optim.weight_decay={t.weight_decay}",
        f"{actor}.optim.lr_warmup_steps={t.warmup_steps}", f"{actor}.optim.clip_grad={t.grad_clip}",
        f"{actor}.ppo_mini_batch_size={t.prompts_per_step // t.mini_batches}", f"{actor}.ppo_epochs={t.epochs}",
        f"{actor}.ppo_micro_batch_size_per_gpu={micro}",
        f"{actor}.clip_ratio_low={a.clip_low}", f"{actor}.clip_ratio_high={a.clip_high}",
        f"{actor}.clip_ratio_c={NO_DUAL_CLIP}", f"{actor}.loss_agg_mode={a.agg}",
        f"{actor}.use_kl_loss={a.kl_coef > 0}", f"{actor}.kl_loss_coef={a.kl_coef}", f"{actor}.kl_loss_type=low_var_kl",
        f"{actor}.entropy_coeff={a.entropy_coef}",
        f"{rollout}.name=vllm", f"{rollout}.n={t.group_size}", f"{rollout}.temperature={t.temperature}",
        f"{rollout}.top_p={t.top_p}", f"{rollout}.dtype={m.dtype}", f"{rollout}.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={micro}",
        f"{rollout}.val_kwargs.n={e.n_samples}", f"{rollout}.val_kwargs.temperature={e.temperature}",
        f"{rollout}.val_kwargs.top_p={t.top_p}", "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
        *(f"{SAMPLER_OPTIONS[k]}={v}" for k, v in t.sampler_options.items() if k in SAMPLER_OPTIONS),
        "reward.custom_reward_function.path=pkg://studykit.integrations.verl",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,mlflow]", f"trainer.project_name={experiment}",
        f"trainer.experiment_name={cfg.run_name()}", f"trainer.total_training_steps={t.steps}",
        "trainer.total_epochs=1000000",  # the step count ends the run, not epochs
        "trainer.val_before_train=True", f"trainer.test_freq={every}",
        f"trainer.save_freq={t.checkpoint_every or t.steps}", f"trainer.default_local_dir={checkpoint_dir}",
    ]
    if a.estimator in CUSTOM_ESTIMATORS:  # Ray actors import the estimators module (verl/__init__.py reads this)
        out.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES={ESTIMATORS_MODULE}")
        out.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.{LAM_ENV}={a.lam}")
    elif "estimator" in cfg.plugins():  # the same module registers the plug-in, named by the environment
        out.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES={ESTIMATORS_MODULE}")
        out += verl_plugins.estimator_overrides(cfg)[1:]
    return out

