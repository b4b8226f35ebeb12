"""Where does a claim turn on? The alignment at which a claim's gain ratio crosses the verdict thresholds.

The paper bins model-task alignment into strong and weak and says (its limitations) that it has no continuous,
quantitative threshold. Given the levels of one alignment axis (models that differ in one pretraining knob, or any
three or more models on one task), each with a measured alignment `x` and the paired per-problem pass@1 deltas of
the claim and of ground-truth GRPO (seeds x problems, seed s of both is the same training seed), this module
estimates the alignment at which the claim's ratio (claim mean delta / ground truth's) reaches a threshold, with an
interval. Pure: numpy and scipy, no MLflow.

- The fit is isotonic regression (non-decreasing in `x`, weighted by each level's problems x seeds; scipy's
  `isotonic_regression`). The claim under test says "it holds when the model is aligned", a monotone dependence;
  isotonic regression assumes nothing more. A logistic curve would force a symmetric sigmoid between two asymptotes,
  and the ratio has neither: it can be negative (the incorrect reward) or above 1.
- `crossing`: the smallest `x` at which the fit reaches the threshold, linearly interpolated between the last level
  below it and the first level at or above it. When no level is below, the claim turns on below the swept range
  (`side="below range"`); when none reaches it, not within the swept range (`side="above range"`). Both are
  answers, not errors.
- `crossing_interval`: replicates of each level's claim and ground-truth means (`metrics.seed_problem_bootstrap`:
  a problem bootstrap plus a Student-t seed layer, so every level needs at least two seeds; drawn independently per
  level, the levels being separate models), each level's ratio recomputed, refitted and crossed. The interval is
  made of each replicate's *bracket*, the two swept levels the fit crosses between (`bracket`): its lower end is a
  low quantile of the brackets' left ends, its upper end a high quantile of their right ends. The levels are all a
  study observes, so where between two levels the claim turns on is not identified by the data: an interval
  from the interpolated crossings alone was as narrow as [0.398, 0.400] on a real study whose crossing lay
  somewhere between levels at 0.34 and 0.48. Replicates that turn on below the range count as -inf and those that
  never turn on as +inf, so an interval can be open on either side; the share of each is reported. Its coverage
  is simulated on the study's design, true curves steep and gradual (tests/test_thresholds.py).
- `predictiveness`: how well an alignment measure (pass@1, pass@k, the area under the pass@k curve) orders the
  levels' ratios: Spearman's rank correlation with a bootstrap interval over levels.

Not in the paper: the paper has two models per task and reads strong/weak off pass@k plots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression
from scipy.stats import spearmanr

from studykit.scoring import metrics

BELOW, ABOVE, CROSSES = "below range", "above range", "crosses"


@dataclass(frozen=True)
class Level:
    """One model on the axis: its measured alignment and the paired (seeds x problems) pass@1 deltas."""

    name: str
    x: float
    claim: np.ndarray  # per-problem pass@1 delta of the claim's runs, one row per seed
    gt: np.ndarray  # the same for ground truth, seed s paired with the claim's seed s

    @property
    def ratio(self) -> float:
        gt = float(np.mean(self.gt))
        return float(np.mean(self.claim)) / gt if gt > 0 else math.nan

    @property
    def weight(self) -> float:
        return float(np.size(self.claim))


@dataclass(frozen=True)
class Crossing:
    """Where the monotone fit reaches `threshold`: `value` when it crosses inside the swept range, else None and
    `side` says which end (below range: at or above the threshold at every level; above range: never reaches it)."""

    threshold: float
    value: float | None
    side: str


@dataclass(frozen=True)
class CrossingInterval:
    crossing: Crossing
    lo: float  # -inf: the interval is open below the swept range
    hi: float  # +inf: open above it
    share_below: float  # share of replicates that turn on below the range
    share_above: float  # share that never turn on within it
    n_boot: int
    interp_lo: float = math.nan  # percentile interval of the interpolated crossings alone: narrower, and it misses a
    interp_hi: float = math.nan  # curve that is steep between two levels (kept to show why the bracket is used)


def monotone_fit(x: Sequence[float], ratio: Sequence[float], weight: Sequence[float] | None = None) -> np.ndarray:
    """Isotonic (non-decreasing in x) least-squares fit of the ratios, in the order of `x` sorted ascending."""
    x, y = np.asarray(x, dtype=float), np.asarray(ratio, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"x and ratio must be equal-length 1-D sequences, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and ratio must be finite (a level whose ground truth did not gain has no ratio)")
    order = np.argsort(x, kind="stable")
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=float)
    return isotonic_regression(y[order], weights=w[order], increasing=True).x


def crossing(x: Sequence[float], fit: Sequence[float], threshold: float) -> Crossing:
    """The smallest x where the non-decreasing `fit` (at the sorted `x`) reaches `threshold`, interpolated."""
    xs, fs = np.sort(np.asarray(x, dtype=float)), np.asarray(fit, dtype=float)
    reached = np.flatnonzero(fs >= threshold)
    if reached.size == 0:
        return Crossing(threshold, None, ABOVE)
    i = int(reached[0])
    if i == 0:
        return Crossing(threshold, None, BELOW)
    x0, x1, f0, f1 = xs[i - 1], xs[i], fs[i - 1], fs[i]
    value = x1 if f1 == f0 else x0 + (threshold - f0) * (x1 - x0) / (f1 - f0)
    return Crossing(threshold, float(value), CROSSES)


def bracket(x: Sequence[float], fit: Sequence[float], threshold: float) -> tuple[float, float]:
    """The two sorted levels the non-decreasing `fit` crosses `threshold` between: (last level below it, first level
    at or above it); (-inf, first level) when it is reached everywhere, (last level, +inf) when nowhere."""
    xs, fs = np.sort(np.asarray(x, dtype=float)), np.asarray(fit, dtype=float)
    reached = np.flatnonzero(fs >= threshold)
    if reached.size == 0:
        return float(xs[-1]), math.inf
    i = int(reached[0])
    return (-math.inf if i == 0 else float(xs[i - 1])), float(xs[i])


def _as_number(c: Crossing) -> float:
    return c.value if c.value is not None else (-math.inf if c.side == BELOW else math.inf)


def _level_replicates(level: Level, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    claim, gt = metrics.seed_problem_bootstrap([level.claim, level.gt], n_boot, seed)
    return claim, gt


def crossing_interval(levels: Sequence[Level], threshold: float, n_boot: int = 1000, alpha: float = 0.05,
                      seed: int = 0) -> CrossingInterval:
    """The crossing of the fitted ratio curve and its bootstrap percentile interval (see the module docstring).

    Needs at least three levels and ground truth gaining at every level (a ratio needs a positive denominator);
    a replicate in which a level's ground truth does not gain leaves that level out of that replicate's fit."""
    if len(levels) < 3:
        raise ValueError(f"a curve needs at least three levels, got {len(levels)}")
    few = [lv.name for lv in levels if np.shape(lv.claim)[0] < 2]
    if few:
        raise ValueError(f"levels {few} have one paired seed: an interval needs at least two per level")
    bad = [lv.name for lv in levels if not lv.ratio == lv.ratio]
    if bad:
        raise ValueError(f"ground truth did not gain on {bad}: no ratio there, so no curve through them")
    xs = np.array([lv.x for lv in levels])
    point = crossing(np.sort(xs), monotone_fit(xs, [lv.ratio for lv in levels], [lv.weight for lv in levels]),
                     threshold)
    reps = [_level_replicates(lv, n_boot, seed + 7919 * i) for i, lv in enumerate(levels)]
    values, lefts, rights = np.full(n_boot, math.nan), np.full(n_boot, math.nan), np.full(n_boot, math.nan)
    for b in range(n_boot):
        gt = np.array([g[b] for _, g in reps])
        keep = gt > 0
        ratios = np.array([c[b] for c, _ in reps])[keep] / gt[keep]
        if keep.sum() < 2:
            continue
        fit = monotone_fit(xs[keep], ratios, [lv.weight for lv, k in zip(levels, keep) if k])
        values[b] = _as_number(crossing(np.sort(xs[keep]), fit, threshold))
        lefts[b], rights[b] = bracket(xs[keep], fit, threshold)
    ok = ~np.isnan(values)
    values, lefts, rights = values[ok], lefts[ok], rights[ok]
    if not values.size:
        return CrossingInterval(point, math.nan, math.nan, math.nan, math.nan, 0)
    lo = np.quantile(lefts, alpha / 2, method="inverted_cdf")
    hi = np.quantile(rights, 1 - alpha / 2, method="inverted_cdf")
    interp = np.quantile(values, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return CrossingInterval(point, float(lo), float(hi), float(np.mean(values == -math.inf)),
                            float(np.mean(values == math.inf)), int(values.size), float(interp[0]), float(interp[1]))


def pass_at_k_area(curve: dict[int, float]) -> float:
    """Area under a pass@k curve against log2(k), over [1, k_max], normalised to [0, 1] (1 = pass@1 of 1)."""
    ks = sorted(curve)
    if not ks or ks[0] != 1:
        raise ValueError(f"the curve needs pass@1 and larger ks, got ks {ks}")
    if len(ks) == 1:
        return float(curve[1])
    logs = np.log2(ks)
    values = np.array([curve[k] for k in ks])
    return float(np.trapezoid(values, logs) / logs[-1])


@dataclass(frozen=True)
class RankAgreement:
    measure: str
    rho: float  # Spearman's rank correlation of the measure with the levels' ratios
    lo: float
    hi: float
    n_levels: int


def predictiveness(measure: str, values: Sequence[float], ratios: Sequence[float], n_boot: int = 2000,
                   alpha: float = 0.05, seed: int = 0) -> RankAgreement:
    """Spearman's rho between an alignment measure and the ratios across levels, with a percentile interval from
    resampling levels (replicates with fewer than three distinct levels, or no spread, are skipped)."""
    v, r = np.asarray(values, dtype=float), np.asarray(ratios, dtype=float)
    keep = np.isfinite(v) & np.isfinite(r)
    v, r = v[keep], r[keep]
    if v.size < 3:
        raise ValueError(f"{measure}: a rank correlation needs at least three levels with a ratio, got {v.size}")
    rho = float(spearmanr(v, r).statistic)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, v.size, v.size)
        if len(set(idx)) < 3 or np.ptp(v[idx]) == 0 or np.ptp(r[idx]) == 0:
            continue
        reps.append(spearmanr(v[idx], r[idx]).statistic)
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2]) if reps else (math.nan, math.nan)
    return RankAgreement(measure, rho, float(lo), float(hi), int(v.size))
