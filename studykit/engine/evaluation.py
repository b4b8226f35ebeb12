"""Held-out evaluation: sample n completions per problem, score true correctness, report pass@k, avg@n, maj@n.

Used before the first update (step 0, the base model), every `eval.every` steps and at the end of every run,
and by the alignment notebook with k = 1..K. pass@k is the unbiased estimator of Chen et al. (2021).

Each group of n completions is scored by the `majority_vote` reward (ungated, with the task's verifier), so
correctness, the format check and maj@n have one definition across the package: maj@n is the fraction of problems
whose majority answer is right, where answers are normalised and, for math tasks, clustered by `verify.math_equal`
before the vote (so `1/2`, `\\frac{1}{2}` and `\\dfrac12` are one answer); see `studykit.scoring.rewards`. The same
rule gives `studykit score` its maj@n.

The per-problem correct counts behind every evaluation are kept (`EvalResult.correct_counts`, aligned with
`problem_ids`); the trainer logs them as the artifact `counts_artifact(set, step)` =
`eval_counts/<set>/step_<step:05d>.json` holding `counts_record`: {"set", "step", "n", "problem_ids",
"correct_counts"}. The verdict table bootstraps over them (studykit.analysis.report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studykit.scoring import metrics, rewards
from studykit.tasks import Problem, share_diagnostics
from studykit.tasks.templates import render

COUNTS_DIR = "eval_counts"


def metric_key(label: str, stat: str, k: int | None = None) -> str:
    """`eval/<set>/<stat>` or `eval/<set>/<stat>_at_<k>`: MLflow refuses '@' in metric names, so pass@4 is `pass_at_4`."""
    return f"eval/{label}/{stat}" if k is None else f"eval/{label}/{stat}_at_{k}"


@dataclass
class EvalResult:
    """Per-problem correct counts and the summary metrics of one eval set."""

    label: str
    n: int
    correct_counts: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    problem_ids: list[str] = field(default_factory=list)
    tokens_generated: int = 0
    """Tokens the sampler generated for this evaluation: the completions' tokens, or a power sampler's count of
    every proposal (its `last_stats`), so their ratio is power sampling's token-cost multiple."""
    answers: int = 0

    def counts_record(self, step: int) -> dict[str, Any]:
        """The JSON record logged as `counts_artifact(label, step)`."""
        return {"set": self.label, "step": int(step), "n": int(self.n), "problem_ids": list(self.problem_ids),
                "correct_counts": [int(c) for c in self.correct_counts]}


def counts_artifact(label: str, step: int) -> str:
    """Artifact path of one evaluation's per-problem counts: `eval_counts/<set>/step_<step:05d>.json`."""
    return f"{COUNTS_DIR}/{label}/step_{int(step):05d}.json"


def evaluate_set(sampler, problems: list[Problem], label: str, *, task, template: str, tokenizer, n: int,
                 ks: list[int], temperature: float, max_new_tokens: int, seed: int) -> EvalResult:
    """Sample `n` completions for every problem and score them with `task`'s verifier (the task object the
    problems came from, so its options hold); its optional `diagnose` hook adds `<stat>/<category>` shares."""
    if not problems:
        raise ValueError(f"eval set {label!r} has no problems")
    vote = rewards.get("majority_vote", format_gate=False, verify=task.verify)
    prompts = [render(p, template, tokenizer) for p in problems]
    groups = sampler.generate(prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    stats = getattr(sampler, "last_stats", None) or {}  # a power sampler's counts of this call
    generated = int(stats.get("tokens_generated", sum(len(t) for g in groups for t in g.token_ids)))
    counts, fmt, majority, texts = [], [], [], []
    for problem, group in zip(problems, groups):
        scored = vote(group.texts, problem)  # hostile completions score 0 there, never crash a run
        counts.append(int(scored.correct.sum()))
        fmt.extend(scored.format_ok.tolist())
        majority.append(bool(scored.extra["majority_correct"]))
        texts.extend(group.texts)
    counts_arr = np.asarray(counts)
    curve = metrics.pass_at_k_curve(counts_arr, n, ks)
    out = {metric_key(label, "pass", k): float(curve[k]) for k in ks}
    out[metric_key(label, "avg", n)] = float(counts_arr.mean() / n)
    out[metric_key(label, "maj", n)] = float(np.mean(majority))
    out[metric_key(label, "format_rate")] = float(np.mean(fmt))
    out.update(share_diagnostics(task, texts, f"eval/{label}/"))
    return EvalResult(label, n, counts_arr, out, [p.id for p in problems], generated, len(problems) * n)


POWER_STEP = 1
"""The step an evaluation-only power-sampling run (`eval.sampler: power`, train.steps 0) logs its power-sampling
evaluation at; step 0 holds the plain evaluation of the same base model, so a verdict's first-to-last gain is power's
gain over plain sampling (studykit.engine.trainer)."""


def eval_seed(step: int) -> int:
    """The sampling seed of the evaluation at `step`: the same for every seed of a study, so the step-0 evaluations
    of one base model agree across conditions and seeds (the paired base of every verdict)."""
    return 10_007 + step


def power_eval_seed(train_seed: int) -> int:
    """The sampling seed of a power-sampling evaluation (at POWER_STEP): the run's `train.seed` enters it, so a
    study's seeds of one power cell are independent MH replicates; from the step alone they would repeat one chain
    (no training: the same base model), and the verdict's seed count would overstate its evidence."""
    return eval_seed(POWER_STEP) + 1_000_003 * (int(train_seed) + 1)


def label_for(cfg, curve: dict[int, float]) -> str:
    """The alignment label of a pass@k curve: `strong` or `weak` by pass@k at the largest logged k <= `eval.alignment_k`
    against `eval.alignment_threshold` (the paper bins strong/weak by pass@k; studykit's probe is `studykit.probes`)."""
    k = max(k for k in curve if k <= cfg.eval.alignment_k)
    word = "strong" if curve[k] >= cfg.eval.alignment_threshold else "weak"
    return f"{word} (pass@{k}={curve[k]:.2f})"
