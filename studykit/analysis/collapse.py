"""Collapse diagnostic: did a run's pass@1 rise and then fall, and is the fall more than noise?

SRT ("Can Large Reasoning Models Self-Train?", Shafayat et al. 2025, arXiv 2505.21444) reports that prolonged
self-rewarded RL "improves, then collapses suddenly": a verdict read off the final step of a long run is right about
the end but hides the fall, and one read off the peak would call a fallen curve a success. So the verdict table
(studykit.analysis.verdicts) keeps judging the FINAL value, and this module adds, per claim x model x task row:

- the mean pass@1 curve over the row's seeds (the steps every seed evaluated), its peak after the first evaluation
  (`peak_pass1`, `peak_step`; the step-0 value is the base model, not a result of training), the final value
  (`final_pass1`) and the drop `peak - final` (`drop_pass1`);
- a (1 - alpha) interval of the drop across seeds: each seed's own drop between the same two steps, mean +- the
  Student t quantile on S - 1 degrees of freedom times their standard error. This is the seed layer of the verdict's
  interval (`metrics.seed_problem_bootstrap`: a t on S - 1 degrees of freedom) without its problem layer: the eval
  problems are fixed, and the question is whether this training fell on them, not whether it would on other problems.
  One seed: no interval (NaN), never flagged.
- a fall from the start is not a collapse: nothing rose. The peak must stand at least `rise` (COLLAPSE_RISE = 0.02
  pass@1, the verdict's `min_effect`: the smallest gain counted as a gain) above the first evaluation (the base);
  a curve that only falls fails on its final value anyway.
- `collapsed` when the peak rose so, the drop's interval excludes 0 (lo > 0) AND the mean drop is at least
  `threshold`, by default
  COLLAPSE_DROP = 0.05 pass@1. Choice (studykit's; SRT gives no number: its collapses fall most of the way back):
  2.5 x the verdict's `min_effect` (0.02, the smallest gain counted as a gain), so a fall that would be called a gain
  in the other direction is not enough on its own, and large enough that the peak-picking bias below cannot reach it
  on noise of a few points.

Selection bias: the peak is the largest of several noisy means, so on a flat noisy curve the drop is positive on
average (the winner's curse). The interval does not correct it; the threshold absorbs it (on iid noise with a 0.02
standard deviation per point, 3 seeds and 9 evaluations, fewer than 5% of curves are flagged: tests/test_collapse.py).
Pure: numpy, pandas and scipy, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

COLLAPSE_DROP = 0.05  # least mean pass@1 drop after the peak called a collapse (module docstring)
COLLAPSE_RISE = 0.02  # least mean pass@1 rise of the peak above the first evaluation: without it nothing collapsed
FIELDS = ("peak_pass1", "final_pass1", "drop_pass1", "drop_lo", "drop_hi", "collapse")


@dataclass(frozen=True)
class Collapse:
    """The collapse diagnostic of one row (module docstring); NaN / None where there is nothing to measure."""

    peak_step: int | None
    peak_pass1: float
    final_step: int | None
    final_pass1: float
    drop_pass1: float
    drop_lo: float
    drop_hi: float
    n_seeds: int
    collapsed: bool

    def fields(self) -> dict:
        """The verdict-table columns: FIELDS, with `collapse` the flag (peak_step is already a column)."""
        d = asdict(self)
        return {"peak_pass1": d["peak_pass1"], "final_pass1": d["final_pass1"], "drop_pass1": d["drop_pass1"],
                "drop_lo": d["drop_lo"], "drop_hi": d["drop_hi"], "collapse": self.collapsed}


NONE = Collapse(None, math.nan, None, math.nan, math.nan, math.nan, math.nan, 0, False)


def seed_table(curves: Sequence[pd.Series]) -> pd.DataFrame:
    """Seeds x steps: the pass@1 curves (index = step) on the steps every non-empty curve has, in step order."""
    curves = [c.dropna() for c in curves if len(c.dropna())]
    if not curves:
        return pd.DataFrame()
    steps = sorted(set.intersection(*(set(c.index) for c in curves)))
    return pd.DataFrame([c.loc[steps].to_numpy(dtype=np.float64) for c in curves], columns=steps)


def t_interval(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, lo, hi): mean +- t_{S-1, 1-alpha/2} x standard error over the S values; lo = hi = NaN for one value."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(1 - alpha / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def collapse(curves: Sequence[pd.Series], threshold: float = COLLAPSE_DROP, alpha: float = 0.05,
             rise: float = COLLAPSE_RISE) -> Collapse:
    """The collapse diagnostic of one row's per-seed pass@1 curves (one Series per seed, index = eval step)."""
    if not 0 <= threshold or not 0 < alpha < 1:
        raise ValueError(f"threshold: expected a number >= 0, got {threshold!r}; alpha: expected (0, 1), got {alpha!r}")
    table = seed_table(curves)
    if table.shape[1] < 2:  # no evaluation after the first: nothing rose or fell
        return NONE if table.empty else Collapse(None, math.nan, int(table.columns[-1]),
                                                 float(table.iloc[:, -1].mean()), math.nan, math.nan, math.nan,
                                                 len(table), False)
    mean_curve = table.mean(axis=0)
    later = mean_curve.iloc[1:]
    peak_step, final_step = int(later.idxmax()), int(table.columns[-1])
    drops = table[peak_step] - table[final_step]
    drop, lo, hi = t_interval(drops.to_numpy(), alpha)
    rose = mean_curve[peak_step] - mean_curve.iloc[0] >= rise
    flagged = bool(rose and not math.isnan(lo) and lo > 0 and drop >= threshold)
    return Collapse(peak_step, float(mean_curve[peak_step]), final_step, float(mean_curve[final_step]), drop, lo, hi,
                    len(table), flagged)


def note(c: Collapse, alpha: float = 0.05) -> str:
    """A verdict-row note for a collapsed row ("" otherwise)."""
    if not c.collapsed:
        return ""
    return (f"COLLAPSED: pass@1 peaked at {c.peak_pass1:.3f} (step {c.peak_step}) and fell to {c.final_pass1:.3f} by "
            f"step {c.final_step} (drop {c.drop_pass1:.3f}, {100 * (1 - alpha):g}% t interval over {c.n_seeds} seeds "
            f"[{c.drop_lo:.3f}, {c.drop_hi:.3f}]); the verdict reads the final value, not the peak")

