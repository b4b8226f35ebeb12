"""Evaluation metrics over sampled completions: pass@k, avg@n, maj@n and bootstrap confidence intervals.

All functions are pure (numpy only). `pass_at_k` is the unbiased estimator of Chen et al. 2021
("Evaluating Large Language Models Trained on Code"): with `n` samples of which `c` are correct,
pass@k = 1 - C(n-c, k) / C(n, k), computed as the product 1 - prod_{i=n-c+1}^{n} (1 - k/i), which
never forms a large binomial. The paper (arXiv 2508.21188) uses pass@k as its model-task alignment
measure; the per-k curves here are the mean over problems, and the confidence bands resample problems
(not samples), which the paper does not report: it is studykit's addition.

maj@n (majority-vote accuracy, as in TTRL / self-consistency): for each problem, the majority answer
is the most common non-None answer among its n samples, ties broken by first appearance in the list;
the problem counts as solved when a sample carrying that answer is marked correct. A problem with no
valid answer counts as unsolved. `maj_at_n` compares answers as given (string equality); the maj@n that
studykit logs and reports (evaluation, `studykit score`) is this rule applied to the answer clusters of the
`majority_vote` reward (studykit.scoring.rewards: normalised, and math answers merged by `verify.math_equal`), so
pass already-canonical answers here.

Seed x problem bootstrap (`seed_problem_bootstrap`, `mean_interval`, `paired_ratio_interval`; studykit's, the paper
judges claims by eye from one seed's curves): a claim's effect is a (seeds x problems) table of per-problem deltas
(final minus step-0 pass@1 of problem p in the run of seed s). Each replicate draws the seeds with replacement and
then the problems with replacement, one problem draw per replicate shared by every drawn seed and by every table
passed together: the runs of a study are evaluated on the same problems, so a claim and its ground truth are
resampled on the same problem indices (paired), which keeps their shared problem-level noise out of the ratio.
Intervals are percentile intervals (`inverted_cdf` quantiles, so they are always values some replicate took).
"""

from __future__ import annotations

import math

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "pass_at_k",
    "pass_at_k_curve",
    "avg_at_n",
    "maj_at_n",
    "majority_answer",
    "bootstrap_ci",
    "pass_at_k_bands",
    "seed_problem_bootstrap",
    "mean_interval",
    "paired_ratio_interval",
    "RatioInterval",
]


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples, `c` correct; needs 0 <= c <= n and 1 <= k <= n."""
    n = _check_int("n", n, 1)
    c = _check_int("c", c, 0)
    k = _check_int("k", k, 1)
    if c > n:
        raise ValueError(f"c (correct count) must be <= n={n}, got {c}")
    if k > n:
        raise ValueError(f"k must be <= n={n} (cannot pick {k} of {n} samples), got {k}")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def _counts(correct_counts: Iterable[int], n: int) -> np.ndarray:
    arr = np.asarray(list(correct_counts) if not isinstance(correct_counts, np.ndarray) else correct_counts)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"correct_counts must be a non-empty 1-D sequence of per-problem counts, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError("correct_counts must hold whole numbers")
        arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() > n:
        raise ValueError(f"correct_counts must lie in [0, n={n}], got range [{arr.min()}, {arr.max()}]")
    return arr


def per_problem_pass_at_k(correct_counts: Iterable[int], n: int, k: int) -> np.ndarray:
    """pass@k of each problem (array aligned with `correct_counts`)."""
    n = _check_int("n", n, 1)
    arr = _counts(correct_counts, n)
    return np.array([pass_at_k(n, int(c), k) for c in arr])


def pass_at_k_curve(correct_counts: Iterable[int], n: int, ks: Iterable[int]) -> dict[int, float]:
    """Mean pass@k over problems for each k in `ks`."""
    arr = _counts(correct_counts, _check_int("n", n, 1))
    return {int(k): float(per_problem_pass_at_k(arr, n, k).mean()) for k in ks}


def avg_at_n(correct_counts: Iterable[int], n: int) -> float:
    """Mean per-sample accuracy: mean over problems of c/n (equals pass@1)."""
    n = _check_int("n", n, 1)
    return float((_counts(correct_counts, n) / n).mean())


def majority_answer(answers: Sequence[str | None]) -> str | None:
    """Most common non-None answer; ties go to the one appearing first; None when no answer is valid."""
    valid = [a for a in answers if a is not None]
    if not valid:
        return None
    counts = Counter(valid)
    best = max(counts.values())
    return next(a for a in valid if counts[a] == best)


def maj_at_n(answers_per_problem: Sequence[Sequence[str | None]], golds_correct: Sequence[Sequence[bool]]) -> float:
    """Fraction of problems whose majority answer is correct (see the module docstring for the rule)."""
    if len(answers_per_problem) != len(golds_correct):
        raise ValueError(
            f"answers_per_problem has {len(answers_per_problem)} problems but golds_correct has {len(golds_correct)}"
        )
    if not answers_per_problem:
        raise ValueError("answers_per_problem must not be empty")
    solved = 0
    for idx, (answers, correct) in enumerate(zip(answers_per_problem, golds_correct)):
        if len(answers) != len(correct):
            raise ValueError(f"problem {idx}: {len(answers)} answers but {len(correct)} correctness flags")
        maj = majority_answer(answers)
        solved += maj is not None and any(bool(ok) for a, ok in zip(answers, correct) if a == maj)
    return solved / len(answers_per_problem)


def bootstrap_ci(
    per_problem_values: Iterable[float],
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of `stat`, resampling problems with replacement."""
    values = np.asarray(list(per_problem_values), dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("per_problem_values must be a non-empty 1-D sequence")
    n_boot = _check_int("n_boot", n_boot, 1)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))
    stats = np.array([stat(values[row]) for row in idx], dtype=np.float64)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def pass_at_k_bands(
    correct_counts: Iterable[int],
    n: int,
    ks: Iterable[int],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[int, tuple[float, float, float]]:
    """Per k: (mean pass@k, bootstrap lo, bootstrap hi) over problems, for plotting curves with bands."""
    arr = _counts(correct_counts, _check_int("n", n, 1))
    out: dict[int, tuple[float, float, float]] = {}
    for k in ks:
        values = per_problem_pass_at_k(arr, n, k)
        lo, hi = bootstrap_ci(values, n_boot=n_boot, alpha=alpha, seed=seed)
        out[int(k)] = (float(values.mean()), lo, hi)
    return out


def _tables(arrays: Sequence[Any]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if not out:
        raise ValueError("need at least one (seeds x problems) table")
    shape = out[0].shape
    for i, a in enumerate(out):
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"table {i}: expected a non-empty (seeds x problems) 2-D array, got shape {a.shape}")
        if a.shape != shape:
            raise ValueError(f"table {i} has shape {a.shape}, table 0 has {shape}: paired tables share seeds and "
                             "problems")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"table {i} holds non-finite values")
    return out


def _alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


def seed_problem_bootstrap(tables: Sequence[Any], n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the grand mean of each (seeds x problems) table, all tables resampled together (see
    the module docstring). Returns an array of shape (len(tables), n_boot). Vectorised: the draws become weights."""
    xs = _tables(tables)
    n_boot = _check_int("n_boot", n_boot, 1)
    n_seeds, n_probs = xs[0].shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    prob_draws = rng.integers(0, n_probs, size=(n_boot, n_probs))
    rows = np.arange(n_boot)[:, None]
    w_seed = np.bincount((seed_draws + rows * n_seeds).ravel(), minlength=n_boot * n_seeds).reshape(n_boot, n_seeds)
    w_prob = np.bincount((prob_draws + rows * n_probs).ravel(), minlength=n_boot * n_probs).reshape(n_boot, n_probs)
    out = np.empty((len(xs), n_boot))
    for i, x in enumerate(xs):
        per_seed = x @ w_prob.T  # (seeds, n_boot): each seed's problem-weighted sum in each replicate
        out[i] = (w_seed * per_seed.T).sum(axis=1) / (n_seeds * n_probs)
    return out


def _quantiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(lo), float(hi)


def mean_interval(table: Any, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the grand mean of a (seeds x problems) table and its seed x problem bootstrap interval."""
    x = _tables([table])[0]
    reps = seed_problem_bootstrap([x], n_boot, seed)[0]
    return (float(x.mean()), *_quantiles(reps, _alpha(alpha)))


@dataclass(frozen=True)
class RatioInterval:
    """A claim's mean effect over ground truth's, with 95% (1 - alpha) intervals from the same paired replicates."""

    ratio: float  # claim mean / gt mean (nan when the gt mean is 0)
    lo: float
    hi: float
    claim: tuple[float, float, float]  # (mean, lo, hi) of the claim's effect
    gt: tuple[float, float, float]  # (mean, lo, hi) of ground truth's effect


def paired_ratio_interval(claim: Any, gt: Any, n_boot: int = 2000, alpha: float = 0.05,
                          seed: int = 0) -> RatioInterval:
    """Ratio of means of two paired (seeds x problems) tables (row s of both is seed s, column p problem p) with its
    percentile interval. A replicate where ground truth does not gain (its mean <= 0) has no finite ratio: it counts
    as +inf when the claim gains there and -inf otherwise, so an interval that reaches such replicates is unbounded
    (it cannot happen when the gt interval lies above 0, which the verdict rule requires before using a ratio)."""
    c, g = _tables([claim, gt])
    alpha = _alpha(alpha)
    reps_c, reps_g = seed_problem_bootstrap([c, g], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(reps_g > 0, reps_c / reps_g, np.where(reps_c > 0, np.inf, -np.inf))
    g_mean = float(g.mean())
    ratio = float(c.mean() / g_mean) if g_mean else math.nan
    return RatioInterval(ratio, *_quantiles(ratios, alpha), (float(c.mean()), *_quantiles(reps_c, alpha)),
                         (g_mean, *_quantiles(reps_g, alpha)))
