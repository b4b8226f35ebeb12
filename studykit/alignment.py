"""Measuring model-task alignment: the base model's pass@k curve (k = 1..K) on each eval set.

The paper (arXiv 2508.21188) calls a model-task pair strongly aligned when its pass@k is high (Qwen2.5 on math
reaches pass@k near 1 at moderate k) and uses that to split the regimes where the surprising claims hold. studykit
labels a pair `strong` when pass@`eval.alignment_k` on the first eval set is at least `eval.alignment_threshold`,
else `weak`; the rule text is logged with the result. One MLflow run per model x task, tagged `rq=alignment`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import mlflow

from . import metrics, tracking
from .config import RunConfig
from .evaluation import evaluate_set, metric_key
from .models import from_config
from .sampling import make_sampler
from .tasks import get as get_task


@dataclass
class AlignmentResult:
    run_id: str
    label: str
    rule: str
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    bands: dict[str, dict[int, tuple[float, float, float]]] = field(default_factory=dict)


def rule_text(cfg: RunConfig) -> str:
    k = max(k for k in range(1, cfg.eval.n_samples + 1) if k <= cfg.eval.alignment_k)
    return (f"strong when pass@{k} >= {cfg.eval.alignment_threshold} on {cfg.eval.sets[0].label} "
            f"({cfg.eval.n_samples} samples per problem, T={cfg.eval.temperature}), else weak")


def label_for(cfg: RunConfig, curve: dict[int, float]) -> str:
    k = max(k for k in curve if k <= cfg.eval.alignment_k)
    word = "strong" if curve[k] >= cfg.eval.alignment_threshold else "weak"
    return f"{word} (pass@{k}={curve[k]:.2f})"


def measure(cfg: RunConfig, progress: bool = True) -> AlignmentResult:
    """Sample the base model, log pass@k for every k <= n_samples and bootstrap bands, return the label."""
    experiment = tracking.experiment_for(cfg)
    policy = from_config(cfg.model)
    sampler = make_sampler(cfg.train.sampler, policy, **cfg.train.sampler_options)
    n, ks = cfg.eval.n_samples, list(range(1, cfg.eval.n_samples + 1))
    result = AlignmentResult("", "", rule_text(cfg))
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.set_tags(tracking.run_tags(cfg) | {"rq": "alignment"} | tracking.owner_tags())
            mlflow.log_params(cfg.flat())
            for es in cfg.eval.sets:
                task = get_task(es.task, **(cfg.data.task_options if es.task == cfg.data.task else {}))
                problems = task.load(es.split)[: es.limit]
                tracking.log_problem_sets(None, [(tracking.set_name(es.label, es.task, es.split, es.limit), problems)])
                res = evaluate_set(sampler, problems, es.label, task=task, template=task.template,
                                   tokenizer=policy.tokenizer, n=n,
                                   ks=ks, temperature=cfg.eval.temperature,
                                   max_new_tokens=cfg.eval.max_new_tokens or cfg.train.max_new_tokens, seed=10_007)
                mlflow.log_metrics(res.metrics, step=0)
                result.curves[es.label] = {k: res.metrics[metric_key(es.label, "pass", k)] for k in ks}
                result.counts[es.label] = res.correct_counts.astype(int).tolist()
                result.bands[es.label] = metrics.pass_at_k_bands(res.correct_counts, n, ks)
            result.label = label_for(cfg, result.curves[cfg.eval.sets[0].label])
            mlflow.set_tag("alignment", result.label)
            mlflow.log_text(json.dumps(_record(result), indent=2), "alignment.json")
            result.run_id = run.info.run_id
    finally:
        sampler.close()
    return result


def _record(result: AlignmentResult) -> dict:
    return {"label": result.label, "rule": result.rule, "curves": result.curves, "counts": result.counts,
            "bands": {s: {k: list(v) for k, v in b.items()} for s, b in result.bands.items()}}
