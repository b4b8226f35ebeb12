"""The GRPO loop: select prompts, sample, reward, filter, update in mini-batches, sync the sampler, evaluate, log.

Follows the paper's verl recipe (arXiv 2508.21188): old log-probs recomputed by the training model, PPO clipped
surrogate with clip-higher, token-mean loss, no KL, dynamic sampling. Departures (LoRA/QLoRA, scale, response
length) are settings in the params files, not code paths. Every run logs to MLflow (see README's metric table),
checkpoints every `train.checkpoint_every` steps, and resumes its own MLflow run when restarted.

Evaluation-only power sampling (`eval.sampler: power`, train.steps 0): after the plain step-0 evaluation of the base
model, the same eval sets are sampled again with `studykit.policy.sampling.power` and logged at step POWER_STEP (1),
with `eval/<set>/tokens_per_answer` at both steps, `token_cost_multiple` and `power_accept_rate` at step 1. Such a run
has no checkpoint: killed during the power evaluation, it is rerun from the start.

Metric history on resume (each step once): metrics are buffered in memory (`studykit.engine.metric_buffer`) and written
right after each checkpoint is saved and at the end; the checkpoint keeps the unwritten ones, so a kill between the
save and the write loses nothing. A run killed at step 13 after its checkpoint at 10 has steps 1-10 in MLflow;
the resumed run recomputes 11-13 and logs those values: every logged value belongs to the attempt the run continued
from, none to the killed one. The live history therefore moves at checkpoints, not at every step.

Run ends: FINISHED; KILLED on KeyboardInterrupt, also while the policy is logged (resumable; further SIGINTs are
ignored while that is recorded); FAILED on a non-finite loss or gradient (the metrics
up to the failing step are written for diagnosis, the run is tagged `resumable=false` and `status_reason`, and a
rerun starts a new run, since resuming it would log those steps twice and fail again); FAILED on any other error
(resumable from its last checkpoint). A resumed run lists its resume steps in `resumed_from_step` and keeps the
reason it stopped as `previous_status_reason`. Every run is tagged with its owner process (`tracking.owner_tags`), so a run
left RUNNING by a killed process is recognised as stale by the study runner.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import mlflow
import numpy as np
import torch
from tqdm.auto import tqdm

from studykit.engine import checkpoint, grpo, selection, update  # noqa: F401 (grpo: tests patch trainer.grpo)
from studykit.planning import plan
from studykit.scoring import plugins
from studykit.infra import timing
from studykit.tracking import experiment as tracking
from studykit.engine.evaluation import label_for
from studykit.engine.metric_buffer import MetricBuffer, replay
from studykit.config.schema import RunConfig
from studykit.engine.evaluation import (POWER_STEP, counts_artifact, eval_seed, evaluate_set, metric_key,
                                       power_eval_seed)
from studykit.policy.models import from_config
from studykit.engine.rollout import collect
from studykit.policy.sampling import make_sampler
from studykit.tasks import get as get_task
from studykit.engine.update import NonFiniteLoss
from studykit.infra.plugins import PluginError
from studykit.tracking import provenance


@dataclass
class TrainResult:
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""  # why a run did not finish (its `status_reason` tag)


@dataclass
class _Run:
    cfg: RunConfig
    policy: object
    sampler: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    reward_fn: object
    data: object
    eval_sets: list  # (EvalSet, task, problems)
    reward_rng: np.random.Generator
    step: int = 0
    history: dict = field(default_factory=dict)  # problem id -> per-epoch training accuracy
    one_shot: tuple | None = None  # (example, selection.Choice) for one-shot runs
    template: str = "think"  # prompt template of the training task
    task: object = None  # the training task (verifier with its options, diagnostics hook)
    last: dict = field(default_factory=dict)
    reference: object = None  # update.Reference of the KL penalty (algo.kl_coef > 0), else None
    metrics: MetricBuffer = field(default_factory=MetricBuffer)  # logged at checkpoints (module docstring)
    run_id: str = ""
    estimator: object = None  # grpo.make_estimator(algo.estimator): a plug-in is resolved once per run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: RunConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) one training run of `cfg` and return its MLflow run id and final metrics."""
    torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.train.seed)
    ckpt = checkpoint.folder(cfg.tracking.checkpoint_dir, cfg.config_hash())
    saved = checkpoint.peek(ckpt) if cfg.tracking.resume else None  # resume off: an old checkpoint is overwritten
    run_id = _resumable_run_id(cfg, saved) if cfg.tracking.resume else None
    run = _build(cfg, saved if run_id else None)  # first: a run that cannot start (say, one-shot without its source)
    # creates nothing in MLflow
    experiment = tracking.experiment_for(cfg)
    state = checkpoint.load(ckpt, run.policy, run.optimizer, run.scheduler) if run_id else None
    with mlflow.start_run(run_id=run_id, experiment_id=experiment) as active:
        run.run_id = active.info.run_id
        mlflow.set_tags(tracking.owner_tags() | tracking.context_tags(cfg))  # this process writes its status now
        if state is None:
            _log_start(run)
        else:
            _restore(run, state)
        try:
            _loop(run, ckpt, progress)
            if cfg.eval.sampler == "power":
                _power_evaluate(run)
            _check_reward_variance(run)
            _log_artifacts(run)
        except KeyboardInterrupt:
            with _interrupts_held():  # a second SIGINT (papermill forwards one) must not cut the record short
                mlflow.set_tag("status_reason", "interrupted; resume from the last checkpoint")
                mlflow.end_run("KILLED")
            raise
        except (NonFiniteLoss, PluginError) as err:  # a plug-in that raised: its error names it
            run.metrics.flush(run.run_id)  # the steps that led to the failure, for diagnosis
            mlflow.set_tags({"status_reason": str(err), "resumable": "false"})
            mlflow.end_run("FAILED")
            return TrainResult(active.info.run_id, "FAILED", run.last, str(err))
        finally:
            run.sampler.close()
    return TrainResult(active.info.run_id, "FINISHED", run.last)


@contextmanager
def _interrupts_held():
    """SIGINT ignored for the block (main thread only: elsewhere signals cannot be set, nor do they arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _build(cfg: RunConfig, saved: dict | None = None) -> _Run:
    """Everything a run needs; `saved` (a checkpoint's peek) keeps a resumed one-shot run on its example."""
    plan.preflight(cfg)  # CUDA runs: refuse one that cannot fit, before any weight loads (skipped on CPU)
    policy = from_config(cfg.model)
    update.check_trainable_precision(policy)
    reference = update.make_reference(policy, cfg.algo.kl_coef)  # the initial model: before any checkpoint loads
    sampler = make_sampler(cfg.train.sampler, policy, **cfg.train.sampler_options)
    params = [p for p in policy.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    warm = cfg.train.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    task = get_task(cfg.data.task, **cfg.data.task_options)
    pool = task.load(cfg.data.train_split)[: cfg.data.train_size]
    # The run's own task object verifies, so its options (e.g. math `timeout_s`) reach the verifier.
    reward_opts = {"format_gate": cfg.reward.format_gate, "verify": task.verify}
    reward_opts |= {"p": cfg.reward.p} if cfg.reward.name == "random" else {}
    if cfg.reward.name == "noisy_ground_truth":
        reward_opts |= {"false_negative": cfg.reward.false_negative, "false_positive": cfg.reward.false_positive}
    eval_tasks = [task if es.task == cfg.data.task else get_task(es.task) for es in cfg.eval.sets]  # same options
    evals = [(es, t, t.load(es.split)[: es.limit]) for es, t in zip(cfg.eval.sets, eval_tasks)]
    reward_fn = plugins.reward(cfg.reward.name, **reward_opts, **cfg.reward.options)  # shipped: rewards.get
    run = _Run(cfg, policy, sampler, optimizer, scheduler, reward_fn,
               selection.EpochSampler(pool, cfg.train.seed), evals, np.random.default_rng(cfg.train.seed),
               template=cfg.data.template or task.template, task=task, reference=reference,
               estimator=grpo.make_estimator(cfg.algo.estimator, cfg.algo.estimator_options))
    if cfg.data.selection == "one_shot":
        from studykit.engine import one_shot

        kept = (saved or {}).get("one_shot")
        choice = one_shot.from_state(kept, pool) if kept else one_shot.choose(cfg, pool, run)
        run.data = selection.OneShotSampler(pool[choice.index])
        run.one_shot = (pool[choice.index], choice)
    return run


def _resumable_run_id(cfg: RunConfig, state: dict | None) -> str | None:
    if not state or not state.get("run_id"):
        return None
    unfinished = [r for r in tracking.find_runs(cfg, ("RUNNING", "KILLED", "FAILED"))
                  if r.data.tags.get("resumable") != "false"]
    return state["run_id"] if any(r.info.run_id == state["run_id"] for r in unfinished) else None


def _log_start(run: _Run) -> None:
    cfg = run.cfg
    mlflow.set_tags(tracking.run_tags(cfg) | provenance.tags(run.policy.base_path))
    mlflow.log_params(cfg.flat())
    mlflow.log_text(json.dumps(cfg.model_dump(mode="json"), indent=2), "config.json")
    run.metrics.add(timing.startup_metrics(), step=0)  # bench/study_time.py: the cell's time before any work
    _log_datasets(run)
    if run.one_shot is not None:
        example, choice = run.one_shot
        mlflow.set_tags({"one_shot.example_id": example.id, "one_shot.rule": choice.rule,
                         "one_shot.source_run": choice.source_run or "none"})
        run.metrics.add({"one_shot/index": choice.index, "one_shot/score": choice.score}, step=0)
    _evaluate(run, 0)
    run.metrics.flush(run.run_id)  # step 0 is there before the first checkpoint: a rerun without one starts anew


def _log_datasets(run: _Run) -> None:
    """The training set (the one example of a one-shot run, else the pool) and the eval sets as dataset inputs."""
    d = run.cfg.data
    if run.one_shot is not None:
        train = (f"train ({d.task}/{d.train_split} one-shot #{run.one_shot[0].id})", [run.one_shot[0]])
    else:
        train = (tracking.set_name("train", d.task, d.train_split, d.train_size), run.data.pool)
    tracking.log_problem_sets(train, [(tracking.set_name(es.label, es.task, es.split, es.limit), problems)
                                      for es, _, problems in run.eval_sets])


def _restore(run: _Run, state: dict) -> None:
    run.step = state["step"]
    run.history = state.get("history", {})
    run.data.load(state.get("data", {}))
    run.reward_rng.bit_generator.state = state["reward_rng"]
    run.sampler.sync(run.policy)
    replay(run.run_id, state.get("pending_metrics", []))  # the checkpoint was saved, its metrics maybe not logged
    stored = mlflow.get_run(run.run_id).data
    run.last.update(stored.metrics)
    mlflow.set_tags(provenance.resumed(stored.tags, run.policy.base_path))  # resumed by other code: recorded
    _resumed_tags(run.run_id, stored.tags, run.step)


def _resumed_tags(run_id: str, tags: dict, step: int) -> None:
    """`resumed_from_step` lists every resume ("1,3"); the reason the run stopped before moves from
    `status_reason` to `previous_status_reason`, so a FINISHED run carries no stale reason."""
    steps = [s for s in tags.get("resumed_from_step", "").split(",") if s] + [str(step)]
    mlflow.set_tag("resumed_from_step", ",".join(steps))
    if "status_reason" in tags:
        mlflow.set_tag("previous_status_reason", tags["status_reason"])
        mlflow.MlflowClient().delete_tag(run_id, "status_reason")


def _loop(run: _Run, ckpt, progress: bool) -> None:
    cfg = run.cfg
    bar = tqdm(range(run.step + 1, cfg.train.steps + 1), desc=cfg.run_name(), disable=not progress,
               initial=run.step, total=cfg.train.steps)
    for step in bar:
        run.step = step
        metrics = _train_step(run, step)
        run.last.update(metrics)
        run.metrics.add(metrics, step)
        bar.set_postfix(reward=f"{metrics['train/reward_mean']:.2f}", acc=f"{metrics['train/accuracy']:.2f}")
        if (cfg.eval.every and step % cfg.eval.every == 0) or step == cfg.train.steps:
            _evaluate(run, step)
        every = cfg.train.checkpoint_every
        if step == cfg.train.steps or (every and step % every == 0):
            _save(run, ckpt)


def _train_step(run: _Run, step: int) -> dict[str, float]:
    cfg, t0 = run.cfg, time.perf_counter()
    rolls = collect(cfg, run.sampler, run.policy.tokenizer, run.reward_fn, run.data.next, run.reward_rng,
                    seed=cfg.train.seed * 100_000 + step, template=run.template, task=run.task,
                    estimator=run.estimator)
    for pid, acc in rolls.per_problem_accuracy.items():
        run.history.setdefault(pid, {})[str(run.data.drawn_epoch.get(pid, 0))] = acc
    t1 = time.perf_counter()
    lr = run.optimizer.param_groups[0]["lr"]  # the rate this step's update uses (the scheduler moves it after)
    run.sampler.sleep()  # vLLM with enable_sleep_mode frees its memory for the update; a no-op otherwise
    stats = _update(run, rolls) if len(rolls) else {"train/skipped_update": 1.0}
    if stats.get("train/logprob_gap_exceeded"):  # the warning went to the log; the tag makes it visible in the UI
        mlflow.set_tag("logprob_gap_warning", f"step {step}: sampler/trainer log-prob gap "
                                              f"{stats['train/logprob_abs_diff']:.3g} > {update.LOGPROB_GAP_BOUND}")
    run.scheduler.step()
    run.sampler.sync(run.policy)
    run.sampler.wake_up()  # weights, then KV cache: ready for the next sampling or evaluation
    t2 = time.perf_counter()
    if step <= cfg.tracking.sample_tables or step == cfg.train.steps:
        _log_samples(rolls, step)
    return rolls.stats | stats | {"train/lr": lr, "time/sample_s": t1 - t0,
                                  "time/update_s": t2 - t1}


def _update(run: _Run, rolls) -> dict[str, float]:
    """The optimiser steps of one rollout batch: mini-batches of micro-batches (studykit.engine.update)."""
    return update.update(run.policy, run.optimizer, rolls, run.cfg, run.step, run.reference)


def _power_evaluate(run: _Run) -> None:
    """`eval.sampler: power` (train.steps 0): the base model's evaluation again with power sampling, logged at
    POWER_STEP beside step 0's plain one, with its token cost over plain sampling's; written at once (no checkpoint)."""
    p = run.cfg.eval.power
    sampler = make_sampler("power", run.policy, alpha=p.alpha, blocks=p.blocks, mh_steps=p.mh_steps,
                           base=run.sampler)  # the run's own backend (hf or vllm): one engine for both evaluations
    try:
        _evaluate(run, POWER_STEP, sampler, seed=power_eval_seed(run.cfg.train.seed))
    finally:
        sampler.close()
    run.metrics.flush(run.run_id)


def _token_metrics(run: _Run, res, step: int, sampler) -> dict[str, float]:
    """Power-sampling runs only: tokens generated per answer, and at POWER_STEP their multiple of step 0's and the
    MH acceptance rate."""
    if run.cfg.eval.sampler != "power":
        return {}
    per_answer = res.tokens_generated / res.answers
    out = {metric_key(res.label, "tokens_per_answer"): per_answer}
    plain = run.last.get(metric_key(res.label, "tokens_per_answer"))
    if step == POWER_STEP and plain:
        out[metric_key(res.label, "token_cost_multiple")] = per_answer / plain
    stats = getattr(sampler, "last_stats", None) or {}
    if stats.get("proposals"):
        out[metric_key(res.label, "power_accept_rate")] = stats["accepted"] / stats["proposals"]
    return out


def _evaluate(run: _Run, step: int, sampler=None, seed: int | None = None) -> None:
    cfg, t0 = run.cfg, time.perf_counter()
    out: dict[str, float] = {}
    sampler = sampler or run.sampler
    for es, task, problems in run.eval_sets:
        template = cfg.data.template if es.task == cfg.data.task and cfg.data.template else task.template
        res = evaluate_set(sampler, problems, es.label, task=task, template=template, tokenizer=run.policy.tokenizer,
                           n=cfg.eval.n_samples, ks=cfg.eval.ks, temperature=cfg.eval.temperature,
                           max_new_tokens=cfg.eval.max_new_tokens or cfg.train.max_new_tokens,
                           seed=eval_seed(step) if seed is None else seed)
        out.update(res.metrics)
        out.update(_token_metrics(run, res, step, sampler))
        mlflow.log_dict(res.counts_record(step), counts_artifact(es.label, step))  # per-problem counts (analysis)
    out["time/eval_s"] = time.perf_counter() - t0
    run.metrics.add(out, step)
    run.last.update(out)
    if step == 0:
        mlflow.set_tag("alignment", alignment_label(cfg, out))


def alignment_label(cfg: RunConfig, metrics: dict[str, float]) -> str:
    """The step-0 alignment tag of a training run, by the rule in studykit.probes.alignment (over the logged ks)."""
    label = cfg.eval.sets[0].label
    curve = {k: metrics[metric_key(label, "pass", k)] for k in cfg.eval.ks}
    return label_for(cfg, curve) if any(k <= cfg.eval.alignment_k for k in curve) else "unmeasured"


def _save(run: _Run, ckpt) -> None:
    state = {"step": run.step, "run_id": run.run_id, "history": run.history,
             "data": run.data.state(), "reward_rng": run.reward_rng.bit_generator.state,
             "pending_metrics": run.metrics.state()}
    if run.one_shot is not None:
        from studykit.engine.one_shot import as_state

        state["one_shot"] = as_state(*run.one_shot)
    checkpoint.save(ckpt, run.policy, run.optimizer, run.scheduler, state)
    run.metrics.flush(run.run_id)  # after the save: a kill in between is repaired by `replay` on resume


NO_VARIANCE = "train/no_variance_run"  # 1: no group of the whole run had reward variance (verdicts note it)


def _check_reward_variance(run: _Run) -> None:
    """Say loudly when no sampled group of the whole run had any reward variance: with a group-relative estimator
    (or dynamic sampling, which drops such groups) every update was then a no-op, and the run only looks trained.
    Read from the logged history, so a resumed run judges all its steps (once: a run resumed after the check has it)."""
    if NO_VARIANCE in run.last:
        return
    history = mlflow.MlflowClient().get_metric_history(run.run_id, "train/zero_var_frac")
    flat = bool(history) and all(m.value >= 1.0 for m in history)
    mlflow.log_metric(NO_VARIANCE, float(flat), step=run.step)
    run.last[NO_VARIANCE] = float(flat)
    if flat:
        algo = run.cfg.algo
        noop = algo.dynamic_sampling or not algo.estimator.endswith("_reinforce")
        text = (f"no group in the whole run ({len(history)} steps) had any reward variance"
                + (": every update was a no-op (the policy did not train)" if noop else
                   f": {algo.estimator} still updates on constant rewards, but no group compared its samples"))
        print(f"WARNING: {run.cfg.run_name()}: {text}", file=sys.stderr, flush=True)
        mlflow.set_tag("warning", text)


def _log_samples(rolls, step: int) -> None:
    if not len(rolls):
        return
    idx = list(range(min(len(rolls), 16)))
    mlflow.log_table({"prompt": [rolls.problems[i].prompt for i in idx], "completion": [rolls.texts[i] for i in idx],
                      "reward": [rolls.rewards[i] for i in idx], "correct": [rolls.correct[i] for i in idx]},
                     artifact_file=f"samples/step_{step:05d}.json")


def _log_artifacts(run: _Run) -> None:
    history = {pid: [v for _, v in sorted(e.items(), key=lambda kv: int(kv[0]))] for pid, e in run.history.items()}
    mlflow.log_dict(history, "example_accuracy.json")
    from studykit.policy.store import log_policy  # the trained policy as `policy/` (tracking.save_policy)

    log_policy(run.policy, run.cfg, mlflow.active_run().info.run_id, run.step)
