"""Simulated studies for the coverage of the verdict intervals (tests/test_interval_coverage.py and
bench/interval_coverage.py share it), and the seed bootstrap that `studykit.scoring.metrics` used before issue 20, kept here
only to measure it beside the current method.

The design is the study's: per seed s, a claim run and a ground-truth run evaluated on the same P problems, each a
(seeds x problems) table of per-problem pass@1 deltas:

    gt[s, p]    = mu_gt + a_p           + u_s + e_sp
    claim[s, p] = ratio * (mu_gt + a_p) + v_s + f_sp      (`shared="proportional"`)
    claim[s, p] = ratio * mu_gt + a_p   + v_s + f_sp      (`shared="additive"`)

a_p ~ N(0, problem_sd) is the problem effect both runs share (one eval set), u_s, v_s ~ N(0, seed_sd) the seed
effects of the two runs, e, f ~ N(0, noise_sd) the per-problem noise of each run. The true ratio of mean gains is
`ratio` in both forms; a study's interval covers when it contains it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from studykit.scoring import metrics

P = 128
DESIGN = {"problems": P, "ratio": 0.4, "mu_gt": 0.3, "problem_sd": 0.2, "noise_sd": 0.15}
Interval = Callable[[np.ndarray, np.ndarray, int, int], tuple[float, float]]


def study(rng: np.random.Generator, seeds: int, seed_sd: float, shared: str = "proportional",
          problems: int = P, ratio: float = 0.4, mu_gt: float = 0.3, problem_sd: float = 0.2,
          noise_sd: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """One simulated study: (claim, gt) tables of shape (seeds, problems)."""
    a = rng.normal(0.0, problem_sd, problems)
    gt_effect = mu_gt + a
    claim_effect = ratio * gt_effect if shared == "proportional" else ratio * mu_gt + a
    gt = gt_effect + rng.normal(0.0, seed_sd, (seeds, 1)) + rng.normal(0.0, noise_sd, (seeds, problems))
    claim = claim_effect + rng.normal(0.0, seed_sd, (seeds, 1)) + rng.normal(0.0, noise_sd, (seeds, problems))
    return claim, gt


def old_seed_problem_bootstrap(tables: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """The pre-issue-20 method: seeds resampled with replacement, then problems (shared draw), percentile."""
    n_seeds, n_probs = tables[0].shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    prob_draws = rng.integers(0, n_probs, size=(n_boot, n_probs))
    rows = np.arange(n_boot)[:, None]
    w_seed = np.bincount((seed_draws + rows * n_seeds).ravel(), minlength=n_boot * n_seeds).reshape(n_boot, n_seeds)
    w_prob = np.bincount((prob_draws + rows * n_probs).ravel(), minlength=n_boot * n_probs).reshape(n_boot, n_probs)
    return np.stack([(w_seed * (x @ w_prob.T).T).sum(axis=1) / (n_seeds * n_probs) for x in tables])


def old_interval(claim: np.ndarray, gt: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    reps_c, reps_g = old_seed_problem_bootstrap([claim, gt], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(reps_g > 0, reps_c / reps_g, np.where(reps_c > 0, np.inf, -np.inf))
    lo, hi = np.quantile(ratios, [0.025, 0.975], method="inverted_cdf")
    return float(lo), float(hi)


def new_interval(claim: np.ndarray, gt: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    r = metrics.paired_ratio_interval(claim, gt, n_boot=n_boot, seed=seed)
    return r.lo, r.hi


def coverage(method: Interval, seeds: int, seed_sd: float, studies: int, n_boot: int, rng_seed: int = 0,
             shared: str = "proportional") -> tuple[float, float]:
    """(share of `studies` simulated studies whose interval contains the true ratio, median interval width)."""
    rng = np.random.default_rng(rng_seed)
    hits, widths = 0, []
    for i in range(studies):
        claim, gt = study(rng, seeds, seed_sd, shared)
        lo, hi = method(claim, gt, n_boot, i)
        hits += lo <= DESIGN["ratio"] <= hi
        widths.append(hi - lo)
    return hits / studies, float(np.median(widths))
