"""Held-out evaluation: sample n completions per problem, score true correctness, report pass@k, avg@n, maj@n.

Used before the first update (step 0, the base model), every `eval.every` steps and at the end of every run,
and by the alignment notebook with k = 1..K. pass@k is the unbiased estimator of Chen et al. (2021).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .tasks import Problem, verifier
from .tasks.templates import render
from .tasks.toy import method_of
from .rewards import normalize_answer
from .verify import extract_answer, format_ok


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


def evaluate_set(sampler, problems: list[Problem], label: str, *, template: str, tokenizer, n: int, ks: list[int],
                 temperature: float, max_new_tokens: int, seed: int) -> EvalResult:
    """Sample `n` completions for every problem and score them with the problem's own task verifier."""
    if not problems:
        raise ValueError(f"eval set {label!r} has no problems")
    verify = verifier(problems[0].task)
    prompts = [render(p, template, tokenizer) for p in problems]
    groups = sampler.generate(prompts, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    counts, fmt, votes, flags, methods = [], [], [], [], Counter()
    for problem, group in zip(problems, groups):
        answers = [extract_answer(t) for t in group.texts]
        correct = [_safe_verify(verify, problem, a) for a in answers]
        counts.append(sum(correct))
        fmt.extend(format_ok(t) for t in group.texts)
        votes.append([normalize_answer(a) for a in answers])
        flags.append(correct)
        if problem.task == "toy":
            methods.update(method_of(t) for t in group.texts)
    counts_arr = np.asarray(counts)
    curve = metrics.pass_at_k_curve(counts_arr, n, ks)
    out = {metric_key(label, "pass", k): float(curve[k]) for k in ks}
    out[metric_key(label, "avg", n)] = float(counts_arr.mean() / n)
    out[metric_key(label, "maj", n)] = metrics.maj_at_n(votes, flags)
    out[metric_key(label, "format_rate")] = float(np.mean(fmt))
    total = sum(methods.values())
    for m, c in methods.items():
        out[metric_key(label, f"method_share/{m}")] = c / total
    return EvalResult(label, n, counts_arr, out)


def _safe_verify(verify, problem: Problem, answer: str | None) -> bool:
    try:
        return bool(verify(problem, answer))
    except Exception:  # a hostile completion scores 0, never crashes a run
        return False
