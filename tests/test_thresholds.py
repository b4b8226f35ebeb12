"""The alignment-curve estimators on synthetic levels whose crossings are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studykit.analysis.thresholds import (
    ABOVE, BELOW, CROSSES, Level, crossing, crossing_interval, monotone_fit, pass_at_k_area, predictiveness)


def test_monotone_fit_pools_a_violation_and_keeps_order():
    fit = monotone_fit([0.3, 0.1, 0.2, 0.4], [0.9, 0.1, 0.5, 0.3])  # sorted x: ratios 0.1, 0.5, 0.9, 0.3
    np.testing.assert_allclose(fit, [0.1, 0.5, 0.6, 0.6])
    assert np.all(np.diff(fit) >= 0)


def test_crossing_interpolates_between_the_levels_around_the_threshold():
    c = crossing([0.1, 0.2, 0.4, 0.8], [0.0, 0.2, 0.6, 1.0], 0.7)
    assert c.side == CROSSES and c.value == pytest.approx(0.4 + (0.7 - 0.6) / (1.0 - 0.6) * 0.4)


def test_no_crossing_in_the_swept_range_is_an_answer():
    assert crossing([0.1, 0.2, 0.3], [0.8, 0.9, 1.0], 0.7) == crossing([0.1, 0.2, 0.3], [0.8, 0.9, 1.0], 0.7)
    assert crossing([0.1, 0.2, 0.3], [0.8, 0.9, 1.0], 0.7).side == BELOW
    assert crossing([0.1, 0.2, 0.3], [0.0, 0.1, 0.2], 0.3).side == ABOVE
    assert crossing([0.1, 0.2, 0.3], [0.0, 0.1, 0.2], 0.3).value is None


def _levels(true_ratio, xs, seeds=4, problems=200, gt_gain=0.4, noise=0.15, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, x in enumerate(xs):
        gt = gt_gain + rng.normal(0, noise, (seeds, problems))
        claim = true_ratio(x) * gt_gain + rng.normal(0, noise, (seeds, problems))
        out.append(Level(f"L{i}", x, claim, gt))
    return out


def test_the_interval_holds_a_known_crossing():
    # a ramp: ratio 0 below x = 0.3, 1 above 0.7, linear between; it reaches 0.7 at x = 0.58
    ramp = lambda x: float(np.clip((x - 0.3) / 0.4, 0, 1))  # noqa: E731
    levels = _levels(ramp, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    ci = crossing_interval(levels, 0.7, n_boot=300)
    assert ci.crossing.side == CROSSES
    assert abs(ci.crossing.value - 0.58) < 0.04
    assert ci.lo <= 0.58 <= ci.hi and ci.hi - ci.lo <= 0.2 + 1e-9  # the brackets: levels 0.5-0.6, at most 0.7
    assert {round(ci.lo, 6), round(ci.hi, 6)} <= {0.4, 0.5, 0.6, 0.7}  # an interval's ends are swept levels
    assert ci.interp_lo <= 0.58 <= ci.interp_hi and ci.share_below == 0 and ci.share_above == 0


def _study_design(true_ratio, xs, rng, seeds=3, problems=128, gt_gain=0.4, sd=0.35, seed_sd=0.03):
    """Levels as the alignment_curve study makes them: 3 paired seeds x 128 problems, per-problem pass@1 deltas with
    a problem spread and a per-seed shift (sizes read off the study's runs: deltas of about +/-0.35 per problem)."""
    out = []
    for i, x in enumerate(xs):
        gt = gt_gain + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, sd, (seeds, problems))
        claim = true_ratio(x) * gt_gain + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, sd, (seeds, problems))
        out.append(Level(f"L{i}", x, claim, gt))
    return out


@pytest.mark.parametrize("shape", ["step", "ramp"])
@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_the_crossing_interval_covers_the_true_crossing_on_the_studys_design(shape, threshold):
    """Coverage simulation: six levels at the method axis's pass@1 values, a true ratio curve with a known crossing,
    200 simulated studies. The bracketed interval must cover the truth at least 95% of the time; the interval of the
    interpolated crossings alone must not, for a curve that is steep between two levels (so the test can fail)."""
    xs = [0.03, 0.08, 0.13, 0.22, 0.34, 0.48]
    curves = {"step": (lambda x: -0.5 if x < 0.36 else 1.0, {0.3: 0.36, 0.7: 0.36}),  # jumps between 0.34 and 0.48
              "ramp": (lambda x: float(np.clip((x - 0.05) / 0.4, 0, 1)), {0.3: 0.17, 0.7: 0.33})}
    true_ratio, truth = curves[shape]
    rng = np.random.default_rng(7)
    covered = interp_covered = 0
    n = 200
    for _ in range(n):
        ci = crossing_interval(_study_design(true_ratio, xs, rng), threshold, n_boot=200, seed=int(rng.integers(1e6)))
        covered += ci.lo <= truth[threshold] <= ci.hi
        interp_covered += ci.interp_lo <= truth[threshold] <= ci.interp_hi
    assert covered / n >= 0.95
    if shape == "step":
        assert interp_covered / n < 0.5


def test_a_claim_that_never_turns_on_gives_an_interval_open_above():
    levels = _levels(lambda x: 0.05, [0.1, 0.3, 0.5, 0.7])
    ci = crossing_interval(levels, 0.7, n_boot=200)
    assert ci.crossing.side == ABOVE and ci.hi == math.inf and ci.share_above > 0.9


def test_a_claim_on_everywhere_turns_on_below_the_range():
    levels = _levels(lambda x: 1.0, [0.1, 0.3, 0.5, 0.7])
    ci = crossing_interval(levels, 0.3, n_boot=200)
    assert ci.crossing.side == BELOW and ci.lo == -math.inf


def test_levels_without_a_ground_truth_gain_are_refused_by_name():
    levels = _levels(lambda x: 1.0, [0.1, 0.3, 0.5], gt_gain=0.4)
    flat = Level("flat", 0.9, levels[0].claim, levels[0].gt - 1.0)
    with pytest.raises(ValueError, match="flat"):
        crossing_interval([*levels, flat], 0.7)
    with pytest.raises(ValueError, match="three levels"):
        crossing_interval(levels[:2], 0.7)
    one_seed = Level("single", 0.95, levels[0].claim[:1], levels[0].gt[:1])
    with pytest.raises(ValueError, match="single"):
        crossing_interval([*levels, one_seed], 0.7)


def test_pass_at_k_area():
    assert pass_at_k_area({1: 0.5}) == 0.5
    assert pass_at_k_area({1: 1.0, 2: 1.0, 4: 1.0}) == pytest.approx(1.0)
    assert pass_at_k_area({1: 0.0, 16: 1.0}) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k_area({2: 0.5})


def test_predictiveness_orders_a_monotone_measure_and_not_a_shuffled_one():
    ratios = [0.0, 0.1, 0.3, 0.6, 0.9, 1.0, 1.0]
    good = predictiveness("pass@1", [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5], ratios, n_boot=500)
    assert good.rho > 0.95 and good.lo > 0.5
    shuffled = predictiveness("noise", [0.3, 0.01, 0.5, 0.1, 0.05, 0.4, 0.2], ratios, n_boot=500)
    assert shuffled.lo < 0 < shuffled.hi


def test_the_alignment_curve_study_names_each_level_by_its_grid_key():
    from pathlib import Path

    from studykit.study import expand
    from studykit.tracking.experiment import group_name, run_tags

    cells = expand(Path(__file__).resolve().parents[1] / "params" / "studies" / "alignment_curve.yaml")
    aligned = [c.config for c in cells if c.config.rq == "alignment"]
    labels = sorted(c.model.label for c in aligned)
    assert len(labels) == 10 and labels[0] == "method-05" and labels[-1] == "skill-80"
    assert {c.model.name for c in aligned} == {"toy:custom"}
    assert len({c.config_hash() for c in aligned}) == 10  # different knobs, different runs
    cfg = next(c.config for c in cells if c.name == "random-skill-60-toy-s1")
    assert run_tags(cfg)["model"] == "skill-60" and group_name(cfg) == "rq1 random | skill-60 | toy"
    assert cfg.model.toy["slip_rate"] == 0.6 and cfg.train.steps == 60 and cfg.eval.every == 30


@pytest.mark.parametrize("n_levels, spread, at_least, below", [(10, 0.05, 0.88, None), (10, 0.3, 0.9, None),
                                                                (10, 1.0, 0.9, None), (6, 0.05, None, 0.9)])
def test_the_rank_agreement_interval_covers_at_ten_levels_and_not_at_six(n_levels, spread, at_least, below):
    """Coverage simulation of `predictiveness`: levels drawn from a population of models (x uniform, ratio = x plus
    noise of sd `spread`), the population's Spearman rho as the truth (computed on 200k draws). The report gives the
    interval from MIN_RANK_LEVELS = 10 levels on because at 6 a near-perfect agreement is undercovered."""
    from studykit.analysis.curve import MIN_RANK_LEVELS
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 200_000)
    truth = spearmanr(x, x + rng.normal(0, spread, x.size)).statistic
    n, covered = 100, 0
    for _ in range(n):
        xs = rng.uniform(0, 1, n_levels)
        a = predictiveness("m", xs, xs + rng.normal(0, spread, n_levels), n_boot=200, seed=int(rng.integers(1e6)))
        covered += a.lo <= truth <= a.hi
    assert MIN_RANK_LEVELS == 10
    if at_least is not None:
        assert covered / n >= at_least
    if below is not None:
        assert covered / n < below
