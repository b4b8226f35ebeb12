"""The collapse diagnostic (studykit.analysis.collapse) on synthetic pass@1 curves, and its place in the verdict."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from studykit.analysis import collapse

STEPS = list(range(0, 241, 30))  # 9 evaluations, as the beyond study's long-horizon cells


def curves(values_per_seed) -> list[pd.Series]:
    return [pd.Series(v, index=STEPS[: len(v)], dtype=float) for v in values_per_seed]


def test_a_rising_curve_has_not_collapsed():
    rise = [0.2 + 0.05 * i for i in range(9)]
    c = collapse.collapse(curves([rise, [v + 0.01 for v in rise], [v - 0.01 for v in rise]]))
    assert c.peak_step == 240 and c.final_step == 240 and c.drop_pass1 == pytest.approx(0.0)
    assert not c.collapsed and c.n_seeds == 3


def test_rise_then_fall_is_flagged_with_the_right_peak_and_drop():
    shape = [0.2, 0.35, 0.5, 0.6, 0.62, 0.5, 0.35, 0.3, 0.25]  # peak at step 120, then falls 0.37
    seeds = [[v + d for v in shape] for d in (-0.02, 0.0, 0.03)]
    seeds[1][-1] -= 0.02  # seeds differ in their drops: a real interval
    c = collapse.collapse(curves(seeds))
    assert c.peak_step == 120 and c.final_step == 240
    assert c.peak_pass1 == pytest.approx(0.62 + 0.01 / 3)
    assert c.drop_pass1 == pytest.approx(0.37 + 0.02 / 3)
    assert 0 < c.drop_lo < c.drop_pass1 < c.drop_hi and c.collapsed
    assert "COLLAPSED" in collapse.note(c) and "step 120" in collapse.note(c)


def test_a_fall_from_the_start_is_not_a_collapse():
    """The alignment-curve study's ttrl at method-35: pass@1 0.34 -> 0.09 -> 0.006, every seed. The drop after the
    first later evaluation is real, but nothing rose: it fails on its final value, it did not collapse."""
    seeds = [[0.339, 0.094 + d, 0.006 + d / 2] for d in (-0.01, 0.0, 0.012)]
    c = collapse.collapse([pd.Series(s, index=[0, 30, 60]) for s in seeds])
    assert c.drop_lo > 0 and c.drop_pass1 > collapse.COLLAPSE_DROP and not c.collapsed
    risen = [[0.339, 0.40 + d, 0.006 + d / 2] for d in (-0.01, 0.0, 0.012)]  # the same fall after a rise: flagged
    assert collapse.collapse([pd.Series(s, index=[0, 30, 60]) for s in risen]).collapsed


def test_the_interval_is_the_t_interval_over_seeds():
    drops = np.array([0.30, 0.10, 0.20])
    seeds = [[0.2, 0.6, 0.6 - d] for d in drops]
    c = collapse.collapse([pd.Series(s, index=[0, 50, 100]) for s in seeds])
    half = 4.302652729911275 * drops.std(ddof=1) / math.sqrt(3)  # t_{2, 0.975}
    assert (c.drop_lo, c.drop_hi) == pytest.approx((0.2 - half, 0.2 + half))


def test_a_fall_inside_the_seed_noise_or_below_the_threshold_is_not_flagged():
    wide = collapse.collapse(curves([[0.2, 0.5, 0.2], [0.2, 0.5, 0.55], [0.2, 0.5, 0.45]]))
    assert wide.drop_pass1 > collapse.COLLAPSE_DROP and wide.drop_lo < 0 and not wide.collapsed
    small = collapse.collapse(curves([[0.2, 0.5, 0.47], [0.2, 0.5, 0.47], [0.2, 0.51, 0.48]]))
    assert small.drop_lo > 0 and small.drop_pass1 < collapse.COLLAPSE_DROP and not small.collapsed


def test_noise_only_curves_are_rarely_flagged():
    rng = np.random.default_rng(0)
    flagged = sum(collapse.collapse(curves(0.4 + rng.normal(0, 0.02, (3, 9)))).collapsed for _ in range(400))
    assert flagged <= 0.05 * 400
    # the same noise around a real fall is flagged nearly always: the check can fail
    fall = np.array([0.2, 0.4, 0.6, 0.6, 0.6, 0.5, 0.4, 0.3, 0.3])
    caught = sum(collapse.collapse(curves(fall + rng.normal(0, 0.02, (3, 9)))).collapsed for _ in range(400))
    assert caught >= 0.95 * 400


def test_one_seed_or_one_evaluation_gives_no_flag():
    one_seed = collapse.collapse(curves([[0.2, 0.8, 0.1]]))
    assert one_seed.drop_pass1 == pytest.approx(0.7) and math.isnan(one_seed.drop_lo) and not one_seed.collapsed
    assert not collapse.collapse(curves([[0.3], [0.4]])).collapsed
    assert collapse.collapse([]) == collapse.NONE
    # seeds evaluated at different steps: only the shared steps count
    c = collapse.collapse([pd.Series([0.1, 0.5, 0.2], index=[0, 10, 20]),
                           pd.Series([0.1, 0.6, 0.2], index=[0, 10, 25])])
    assert c.final_step == 10 and c.peak_step == 10


def test_the_verdict_reads_the_final_value_and_surfaces_the_collapse():
    from studykit.analysis import verdict_text
    from studykit.analysis.verdicts import verdict_table

    rows, hist = [], []
    gt = [0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.6, 0.6, 0.6]
    mv = [0.2, 0.4, 0.55, 0.6, 0.62, 0.5, 0.35, 0.28, 0.25]
    for claim, shape in (("ground_truth", gt), ("ttrl", mv)):
        for seed, d in enumerate((-0.02, 0.0, 0.03)):
            rid = f"{claim}{seed}"
            rows.append({"run_id": rid, "claim": claim, "condition": claim, "rq": "rq1", "model": "toy:strong",
                         "task": "toy", "seed": seed, "alignment": "strong",
                         "metrics.eval/toy/pass_at_1": shape[-1] + d})
            hist += [{"run_id": rid, "key": "eval/toy/pass_at_1", "step": s, "value": v + d * (s > 0)}
                     for s, v in zip(STEPS, shape)]
    table = verdict_table(pd.DataFrame(rows), pd.DataFrame(hist))
    row = table.set_index("claim").loc["ttrl"]
    assert bool(row["collapse"]) and row["peak_step"] == 120 and "COLLAPSED" in row["note"]
    assert row["delta_pass1"] == pytest.approx(0.05 + 0.01 / 3)  # the final value, not the peak's +0.42
    assert not bool(table.set_index("claim").loc["ground_truth", "collapse"])
    md = verdict_text.markdown(table)
    assert "collapsed -0.3" in md and "| no |" in md
    rec = {r["claim"]: r for r in verdict_text.records(table)}
    assert rec["ttrl"]["collapse"] is True and rec["ttrl"]["drop_lo"] > 0
