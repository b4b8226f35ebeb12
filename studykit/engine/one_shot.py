"""Choosing the single training example of a one-shot run (RQ2; 1-shot RLVR, Wang et al. 2025), once.

`historical_variance` reads `example_accuracy.json` from ONE earlier run: `one_shot.source_run` when set, else the
FINISHED full-data ground-truth run whose config hash is `one_shot.source_config_hash` (the study sets it to the
baseline cell of the same model, task, seed and ablation), else the hash of this config with the one-shot
selection and labels swapped for ground truth's (`baseline_config`). Never another seed, another ablation such as
mb4x4, or a newer run of an edited config. When that run does not exist the run fails before it starts, naming what
it needs; there is no fallback to another rule. The choice (example id, rule, score, source run) is logged as tags
and stored in the checkpoint, so a resumed run trains on the same example.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from studykit.engine import selection
from studykit.tracking import experiment as tracking
from studykit.config.schema import OneShotConfig, RunConfig
from studykit.engine.evaluation import evaluate_set
from studykit.tasks import Problem


class OneShotSourceMissing(ValueError):
    """historical_variance has no full-data ground-truth run to read."""


def baseline_config(cfg: RunConfig) -> RunConfig:
    """The full-data ground-truth run `cfg`'s one-shot example is ranked from: the same config with full data and
    ground truth's labels (`ground_truth@<ablation>` for an ablation cell)."""
    ablation = cfg.condition.partition("@")[2] if cfg.rq == "ablation" else ""
    condition = f"ground_truth@{ablation}" if ablation else "ground_truth" if cfg.condition else ""  # "" = unlabelled
    labels = {"rq": "ablation" if ablation else "rq1", "claim": "ground_truth", "condition": condition}
    data = cfg.data.model_copy(update={"selection": "full", "one_shot": OneShotConfig()})
    return cfg.model_copy(update={**labels, "data": data})


def choose(cfg: RunConfig, pool: list[Problem], run) -> selection.Choice:
    rule = cfg.data.one_shot.rule
    if rule == "index":
        if cfg.data.one_shot.index >= len(pool):
            raise ValueError(f"data.one_shot.index={cfg.data.one_shot.index} but the training pool has {len(pool)} problems")
        return selection.Choice(cfg.data.one_shot.index, 0.0, "index")
    if rule == "random":
        k = min(cfg.data.one_shot.pool, len(pool))
        return selection.Choice(int(np.random.default_rng(cfg.train.seed).integers(k)), 0.0, "random")
    if rule == "historical_variance":
        source_run, history = _source_history(cfg)
        choice = selection.historical_variance(history, pool)
        choice.source_run = source_run
        return choice
    return _base_variance(cfg, pool, run)


def as_state(example: Problem, choice: selection.Choice) -> dict:
    """What the checkpoint and the run's tags keep of the choice."""
    return {"example_id": example.id, **asdict(choice)}


def from_state(state: dict, pool: list[Problem]) -> selection.Choice:
    """The checkpointed choice, checked against the pool it indexes."""
    choice = selection.Choice(state["index"], state["score"], state["rule"], state.get("source_run"))
    if choice.index >= len(pool) or pool[choice.index].id != state["example_id"]:
        raise ValueError(f"checkpointed one-shot example {state['example_id']!r} (index {choice.index}) is not in the "
                         "training pool any more; delete the checkpoint folder to start the run afresh")
    return choice


def _base_variance(cfg: RunConfig, pool: list[Problem], run) -> selection.Choice:
    candidates = pool[: cfg.data.one_shot.pool]
    res = evaluate_set(run.sampler, candidates, "one_shot_pool", task=run.task, template=run.template,
                       tokenizer=run.policy.tokenizer,
                       n=cfg.data.one_shot.n_samples, ks=[1], temperature=cfg.train.temperature,
                       max_new_tokens=cfg.train.max_new_tokens, seed=cfg.train.seed)
    return selection.base_variance(res.correct_counts, cfg.data.one_shot.n_samples)


def _source_history(cfg: RunConfig) -> tuple[str, dict]:
    client = tracking.connect(cfg.tracking.uri)
    run_id = cfg.data.one_shot.source_run or _baseline_run(cfg, client)
    try:
        path = client.download_artifacts(run_id, "example_accuracy.json")
    except Exception as err:
        raise OneShotSourceMissing(f"data.one_shot.source_run {run_id!r}: no example_accuracy.json artifact ({err}); "
                                   "it must be a finished full-data training run") from None
    with open(path) as f:
        return run_id, json.load(f)


def _baseline_run(cfg: RunConfig, client) -> str:
    wanted = cfg.data.one_shot.source_config_hash or baseline_config(cfg).config_hash()
    experiment = cfg.tracking.experiment or cfg.study
    exp = client.get_experiment_by_name(experiment)
    runs = [] if exp is None else client.search_runs(
        [exp.experiment_id], f"tags.config_hash = '{wanted}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"])
    if not runs:
        raise OneShotSourceMissing(
            f"data.one_shot.rule=historical_variance needs a FINISHED full-data ground-truth run of the same study, "
            f"model ({cfg.model.name}), task ({cfg.data.task}) and seed ({cfg.train.seed}) with config hash {wanted} "
            f"in experiment {experiment!r}, and there is none. Run that cell first (a study orders it before this one), "
            "set data.one_shot.source_run to a run id, or choose data.one_shot.rule=base_variance.")
    return runs[0].info.run_id
