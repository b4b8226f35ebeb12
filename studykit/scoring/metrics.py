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

Seed x problem intervals (`seed_problem_bootstrap`, `mean_interval`, `paired_ratio_interval`; studykit's, the paper
judges claims by eye from one seed's curves): a claim's effect is a (seeds x problems) table of per-problem deltas
(final minus step-0 pass@1 of problem p in the run of seed s). Its grand mean carries three variance components:
the seed effect (sigma_seed^2 / S), the problem effect (sigma_prob^2 / P) and the seed-by-problem noise
(sigma_noise^2 / (S P)). Each replicate is the point estimate plus two independent layers (see
`seed_problem_bootstrap`): a problem bootstrap of the seed-averaged table, one problem draw shared by every table
passed together (the runs of a study are evaluated on the same problems, so a claim and its ground truth are
resampled on the same problem indices, which keeps their shared problem-level noise out of the ratio), and a
parametric seed layer: the per-seed means' spread scaled by a Student t with S - 1 degrees of freedom. Intervals are
percentile intervals (`inverted_cdf` quantiles). One seed gives no interval (no seed variance can be estimated).
An earlier version resampled the seeds with replacement: with two seeds its quantiles lay between the two observed
seeds and its nominal 95% covered 63-92% at 2 seeds in simulation, 93.5-97% now (`bench/interval_coverage.py`).
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


def _psd_sqrt(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root of a covariance matrix and the pseudo-inverse of that root (negative eigenvalues -> 0)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    vals = np.clip(vals, 0.0, None)
    keep = vals > 1e-12 * max(float(vals.max()), 1e-300)
    inv = np.where(keep, 1.0 / np.sqrt(np.where(keep, vals, 1.0)), 0.0)
    return (vecs * np.sqrt(vals)) @ vecs.T, (vecs * inv) @ vecs.T


def _problem_columns(x: np.ndarray) -> np.ndarray:
    """(problems x tables) seed-averaged columns whose spread carries the problem effect only.

    A column mean over S seeds holds the problem effect plus 1/S of the seed-by-problem noise; that noise is already
    in the seed layer (each seed's mean holds its share), so it is taken out here: the columns are mapped linearly
    so that their covariance across tables becomes cov(columns) - cov(two-way residuals) / S (clipped at 0)."""
    n_tabs, n_seeds, n_probs = x.shape
    cols = x.mean(axis=1).T
    dev = cols - cols.mean(axis=0)
    if n_probs < 2:
        return cols
    res = (x - x.mean(axis=2, keepdims=True) - x.mean(axis=1, keepdims=True) + x.mean(axis=(1, 2))[:, None, None])
    flat = res.reshape(n_tabs, -1)
    cov_res = flat @ flat.T / ((n_seeds - 1) * (n_probs - 1))
    cov_col = dev.T @ dev / (n_probs - 1)
    if np.all(np.diag(cov_res) <= 1e-12 * np.diag(cov_col)):  # seeds agree problem by problem: no noise to take out
        return cols
    _, inv_root = _psd_sqrt(cov_col)
    root, _ = _psd_sqrt(cov_col - cov_res / n_seeds)
    return cols.mean(axis=0) + dev @ (root @ inv_root).T


def seed_problem_bootstrap(tables: Sequence[Any], n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Replicates of the grand mean of each (seeds x problems) table, all tables drawn together: shape
    (len(tables), n_boot). Needs at least 2 seeds (with one, no seed variance can be estimated: ValueError).

    replicate = grand mean + problem layer + seed layer, the layers independent:

    - seed layer: a multivariate Student t with S - 1 degrees of freedom whose scale is the sample covariance of
      the tables' per-seed means over S (the draw is D^T z / sqrt(S (S - 1)) * sqrt((S - 1) / chi2_{S-1}), D the
      per-seed means minus their mean). Any linear combination of the tables (claim - R * gt, the ratio's test
      quantity) therefore gets exactly the t pivot of its own per-seed values: the seed effect and the
      seed-by-problem noise, with the t quantile that two or three seeds need, not the (S - 1) / S-shrunk spread
      of resampling the observed seeds.
    - problem layer: the problems resampled with replacement on the seed-averaged table (one draw shared by all
      tables: paired), with the seed-by-problem noise taken out of its spread (`_problem_columns`), so that the
      noise is counted once. It carries the problem effect, shared by all seeds because they use one eval set.

    Adding an independent problem draw to a t seed draw is the Behrens-Fisher (fiducial) combination: slightly
    conservative when the two layers are of similar size, exact when one dominates: in simulated studies of the
    verdict's design the nominal 95% ratio interval covered 93.5-97.2% at 2, 3 and 5 seeds
    (tests/test_interval_coverage.py, bench/interval_coverage.py)."""
    xs = _tables(tables)
    n_boot = _check_int("n_boot", n_boot, 1)
    n_seeds, n_probs = xs[0].shape
    if n_seeds < 2:
        raise ValueError(f"tables have {n_seeds} seed (row): an interval needs at least 2 seeds, since one seed gives "
                         "no estimate of the seed-to-seed variance")
    x = np.stack(xs)
    rng = np.random.default_rng(seed)
    prob_draws = rng.integers(0, n_probs, size=(n_boot, n_probs))
    rows = np.arange(n_boot)[:, None]
    w_prob = np.bincount((prob_draws + rows * n_probs).ravel(), minlength=n_boot * n_probs).reshape(n_boot, n_probs)
    problem = (w_prob @ _problem_columns(x)).T / n_probs  # (tables, n_boot): resampled means of the columns
    seed_means = x.mean(axis=2)
    seed_dev = seed_means - seed_means.mean(axis=1, keepdims=True)  # (tables, seeds)
    z = rng.standard_normal((n_boot, n_seeds))
    t_scale = np.sqrt((n_seeds - 1) / rng.chisquare(n_seeds - 1, size=n_boot))
    seed_layer = (z @ seed_dev.T).T * t_scale / math.sqrt(n_seeds * (n_seeds - 1))
    return problem + seed_layer


def _quantiles(values: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(lo), float(hi)


def mean_interval(table: Any, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): the grand mean of a (seeds x problems) table and its seed x problem interval
    (`seed_problem_bootstrap`); lo = hi = nan for a one-seed table, which has no honest interval."""
    x = _tables([table])[0]
    alpha = _alpha(alpha)
    if x.shape[0] < 2:
        return float(x.mean()), math.nan, math.nan
    reps = seed_problem_bootstrap([x], n_boot, seed)[0]
    return (float(x.mean()), *_quantiles(reps, alpha))


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
    (it cannot happen when the gt interval lies above 0, which the verdict rule requires before using a ratio).

    Why the percentile interval of the replicate ratios is honest for a ratio: for any R, claim_b / gt_b <= R
    exactly when claim_b - R * gt_b <= 0 (gt_b > 0), and the replicates of that linear combination carry its own
    per-seed t layer and paired problem layer (`seed_problem_bootstrap`). So the interval is the set of R that the
    test of claim - R * gt = 0 does not reject (Fieller's construction), with no linearisation of the ratio.
    One paired seed: lo = hi = nan (and the same in `claim` and `gt`): no interval, the verdict says so."""
    c, g = _tables([claim, gt])
    alpha = _alpha(alpha)
    g_mean = float(g.mean())
    ratio = float(c.mean() / g_mean) if g_mean else math.nan
    if c.shape[0] < 2:
        return RatioInterval(ratio, math.nan, math.nan, (float(c.mean()), math.nan, math.nan),
                             (g_mean, math.nan, math.nan))
    reps_c, reps_g = seed_problem_bootstrap([c, g], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(reps_g > 0, reps_c / reps_g, np.where(reps_c > 0, np.inf, -np.inf))
    return RatioInterval(ratio, *_quantiles(ratios, alpha), (float(c.mean()), *_quantiles(reps_c, alpha)),
                         (g_mean, *_quantiles(reps_g, alpha)))
