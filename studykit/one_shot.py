"""Choosing the single training example of a one-shot run (RQ2; 1-shot RLVR, Wang et al. 2025).

`historical_variance` reads `example_accuracy.json` from an earlier full-data ground-truth run: `one_shot.source_run`,
or else the newest finished one with the same study, model, task and (preferably) seed. When no such run exists the rule
falls back to `base_variance` and says so in the chosen rule's name (logged as the `one_shot.rule` tag), never silently.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from . import selection, tracking
from .config import RunConfig
from .evaluation import evaluate_set
from .tasks import Problem


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
        history = _source_history(cfg)
        if history is not None:
            return selection.historical_variance(history, pool)
        warnings.warn("one_shot: no full-data ground-truth run found for historical_variance; using base_variance")
        choice = _base_variance(cfg, pool, run)
        return selection.Choice(choice.index, choice.score, "base_variance (fallback: no full-data run)")
    return _base_variance(cfg, pool, run)


def _base_variance(cfg: RunConfig, pool: list[Problem], run) -> selection.Choice:
    candidates = pool[: cfg.data.one_shot.pool]
    template = run.template
    res = evaluate_set(run.sampler, candidates, "one_shot_pool", template=template, tokenizer=run.policy.tokenizer,
                       n=cfg.data.one_shot.n_samples, ks=[1], temperature=cfg.train.temperature,
                       max_new_tokens=cfg.train.max_new_tokens, seed=cfg.train.seed)
    return selection.base_variance(res.correct_counts, cfg.data.one_shot.n_samples)


def _source_history(cfg: RunConfig) -> dict | None:
    client = tracking.connect(cfg.tracking.uri)
    run_id = cfg.data.one_shot.source_run or _latest_full_run(cfg, client)
    if run_id is None:
        return None
    path = client.download_artifacts(run_id, "example_accuracy.json")
    with open(path) as f:
        return json.load(f)


def _latest_full_run(cfg: RunConfig, client) -> str | None:
    exp = client.get_experiment_by_name(cfg.tracking.experiment or cfg.study)
    if exp is None:
        return None
    query = (f"tags.claim = 'ground_truth' and tags.model = '{cfg.model.name}' and tags.task = '{cfg.data.task}' "
             f"and attributes.status = 'FINISHED'")
    runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if r.data.params.get("data.selection") == "full"]
    same_seed = [r for r in runs if r.data.tags.get("seed") == str(cfg.train.seed)]
    best = (same_seed or runs)
    return best[0].info.run_id if best else None

