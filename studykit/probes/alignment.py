"""Measuring model-task alignment: the base model's pass@k curve (k = 1..K) on each eval set.

The paper (arXiv 2508.21188) calls a model-task pair strongly aligned when its pass@k is high (Qwen2.5 on math
reaches pass@k near 1 at moderate k) and uses that to split the regimes where the surprising claims hold. studykit
labels a pair `strong` when pass@`eval.alignment_k` on the first eval set is at least `eval.alignment_threshold`,
else `weak`; the rule text is logged with the result. One MLflow run per model x task, tagged `rq=alignment`.

The label has the paper's second axis too: `clean` or `contaminated`, by the contamination probe
(`studykit.probes.contamination`, re-exported here as `contamination`) on every eval set, read on the first, with the
thresholds of `eval.contamination` (studykit's own). The run logs `contamination/<set>/em_<f>`,
`contamination/<set>/rougeL_<f>`, `contamination/<set>/answer_acc_prefix<pct>` (partial-prompt answer accuracy,
the label's criterion beside exact match) and `contamination/<set>/answer_recall` (a diagnostic), each with `_lo` /
`_hi`, the tags `alignment` (e.g. `strong, contaminated (pass@16=1.00; em@0.6=0.83, acc@0.6=0.90,
recall=0.97)`), `strength` and
`contamination`, and `contamination.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import mlflow

from studykit.scoring import metrics
from studykit.planning import plan
from studykit.infra import timing
from studykit.tracking import experiment as tracking
from studykit.config.schema import RunConfig
from studykit.probes.contamination import (  # noqa: F401  (contamination: public here too)
    ContaminationResult,
    contamination,
)
from studykit.engine.evaluation import evaluate_set, label_for, metric_key  # noqa: F401 (label_for: public here too)
from studykit.policy.models import from_config
from studykit.policy.sampling import make_sampler
from studykit.tasks import get as get_task
from studykit.tracking import provenance


@dataclass
class AlignmentResult:
    run_id: str
    label: str
    rule: str
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    bands: dict[str, dict[int, tuple[float, float, float]]] = field(default_factory=dict)
    contamination: dict[str, ContaminationResult] = field(default_factory=dict)
    strength: str = ""
    colour: str = ""  # `clean` / `contaminated` ("" when the probe is off)


def rule_text(cfg: RunConfig) -> str:
    k = max(k for k in range(1, cfg.eval.n_samples + 1) if k <= cfg.eval.alignment_k)
    return (f"strong when pass@{k} >= {cfg.eval.alignment_threshold} on {cfg.eval.sets[0].label} "
            f"({cfg.eval.n_samples} samples per problem, T={cfg.eval.temperature}), else weak")


def contamination_rule_text(cfg: RunConfig) -> str:
    c = cfg.eval.contamination
    return (f"contaminated when exact match of the {c.label_fraction:g}-prefix completion >= {c.em_threshold} or the "
            f"answer accuracy from that prefix >= {c.answer_threshold} on {cfg.eval.sets[0].label} (studykit's "
            "thresholds), else clean; direct answering of the full problem (recall) is a diagnostic only")


def colour_for(cfg: RunConfig, probe: ContaminationResult) -> tuple[str, str]:
    """(`clean` / `contaminated`, the numbers behind it) by the thresholds of `eval.contamination`."""
    c = cfg.eval.contamination
    em, acc = probe.em[c.label_fraction][0], probe.answer_acc[c.label_fraction][0]
    recall = f", recall={probe.answer_recall[0]:.2f}" if probe.answer_recall else ""  # diagnostic: not in the rule
    word = "contaminated" if em >= c.em_threshold or acc >= c.answer_threshold else "clean"
    return word, f"em@{c.label_fraction:g}={em:.2f}, acc@{c.label_fraction:g}={acc:.2f}{recall}"


def probe_set(cfg: RunConfig, policy, task, problems: list) -> ContaminationResult:
    """The contamination probe on one eval set's problems, with `eval.contamination`'s options."""
    c = cfg.eval.contamination
    return contamination(policy, problems[: c.limit], tuple(c.fractions), task=task,
                         template=getattr(task, "template", "raw"), batch_size=c.batch_size,
                         max_remainder_tokens=c.max_remainder_tokens, recall_max_new_tokens=c.recall_max_new_tokens,
                         answer_fractions=tuple(c.answer_fractions), answer_max_new_tokens=c.answer_max_new_tokens)


def measure(cfg: RunConfig, progress: bool = True) -> AlignmentResult:
    """Sample the base model, log pass@k for every k <= n_samples and bootstrap bands, return the label."""
    experiment = tracking.experiment_for(cfg)
    plan.preflight(cfg)  # CUDA runs: refuse one that cannot fit, before any weight loads (skipped on CPU)
    policy = from_config(cfg.model)
    sampler = make_sampler(cfg.train.sampler, policy, **cfg.train.sampler_options)
    n, ks = cfg.eval.n_samples, list(range(1, cfg.eval.n_samples + 1))
    probe_on = cfg.eval.contamination.enabled
    result = AlignmentResult("", "", rule_text(cfg) + ("; " + contamination_rule_text(cfg) if probe_on else ""))
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.set_tags(tracking.run_tags(cfg) | {"rq": "alignment"} | tracking.owner_tags()
                            | provenance.tags(policy.base_path))
            mlflow.log_params(cfg.flat())
            mlflow.log_metrics(timing.startup_metrics(), step=0)  # bench/study_time.py: time before any work
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
                if probe_on:
                    probe = result.contamination[es.label] = probe_set(cfg, policy, task, problems)
                    mlflow.log_metrics(probe.metrics(es.label), step=0)
            first = cfg.eval.sets[0].label
            result.strength = result.label = label_for(cfg, result.curves[first])
            tags = {"strength": result.strength}
            if probe_on:
                result.colour, numbers = colour_for(cfg, result.contamination[first])
                word, _, pass_text = result.strength.partition(" ")
                result.label = f"{word}, {result.colour} ({pass_text.strip('()')}; {numbers})"
                tags["contamination"] = f"{result.colour} ({numbers})"
                mlflow.log_text(json.dumps({s: r.record() for s, r in result.contamination.items()}, indent=2),
                                "contamination.json")
            mlflow.set_tags({"alignment": result.label, **tags})
            mlflow.log_text(json.dumps(_record(result), indent=2), "alignment.json")
            result.run_id = run.info.run_id
    finally:
        sampler.close()
    return result


def _record(result: AlignmentResult) -> dict:
    return {"label": result.label, "strength": result.strength, "colour": result.colour, "rule": result.rule,
            "curves": result.curves, "counts": result.counts,
            "bands": {s: {k: list(v) for k, v in b.items()} for s, b in result.bands.items()}}
