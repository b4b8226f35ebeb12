"""Tests for studykit.scoring.metrics: pass@k against brute force, edge cases, bootstrap, maj@n."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from studykit.scoring import metrics as M


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert M.pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_edges():
    assert M.pass_at_k(16, 0, 16) == 0.0
    assert M.pass_at_k(16, 16, 1) == 1.0
    assert M.pass_at_k(16, 4, 1) == pytest.approx(0.25)
    assert M.pass_at_k(16, 1, 16) == 1.0
    # large n stays finite and in range (no huge binomials)
    v = M.pass_at_k(5000, 3, 1000)
    assert 0.0 < v < 1.0 and np.isfinite(v)
    assert v == pytest.approx(1 - (4000 * 3999 * 3998) / (5000 * 4999 * 4998))


@pytest.mark.parametrize(
    "args, name",
    [((4, 2, 5), "k"), ((4, 5, 1), "c"), ((4, -1, 1), "c"), ((0, 0, 1), "n"), ((4, 1, 0), "k"), ((4, 1.5, 1), "c")],
)
def test_pass_at_k_bad_args_name_the_argument(args, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        M.pass_at_k(*args)


def test_curve_and_avg():
    counts = [0, 4, 8]
    curve = M.pass_at_k_curve(counts, 8, [1, 2, 8])
    assert curve[1] == pytest.approx(0.5)
    assert curve[8] == pytest.approx(2 / 3)
    assert curve[2] == pytest.approx((0 + brute_pass_at_k(8, 4, 2) + 1) / 3)
    assert M.avg_at_n(counts, 8) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="correct_counts"):
        M.avg_at_n([9], 8)
    with pytest.raises(ValueError, match="correct_counts"):
        M.pass_at_k_curve([], 8, [1])


def test_bootstrap_covers_mean_and_narrows():
    rng = np.random.default_rng(1)
    small = rng.random(20)
    big = rng.random(2000)
    lo_s, hi_s = M.bootstrap_ci(small, n_boot=500)
    lo_b, hi_b = M.bootstrap_ci(big, n_boot=500)
    assert lo_s <= small.mean() <= hi_s
    assert lo_b <= big.mean() <= hi_b
    assert (hi_b - lo_b) < (hi_s - lo_s) / 3
    assert M.bootstrap_ci(small, n_boot=200, seed=3) == M.bootstrap_ci(small, n_boot=200, seed=3)
    with pytest.raises(ValueError, match="alpha"):
        M.bootstrap_ci(small, alpha=1.5)
    with pytest.raises(ValueError, match="per_problem_values"):
        M.bootstrap_ci([])


def test_bootstrap_constant_values_is_degenerate():
    assert M.bootstrap_ci([0.3] * 10, n_boot=50) == pytest.approx((0.3, 0.3))


def test_bands_bracket_curve():
    counts = [0, 1, 3, 8, 8, 2, 5, 0]
    bands = M.pass_at_k_bands(counts, 8, [1, 4], n_boot=300)
    curve = M.pass_at_k_curve(counts, 8, [1, 4])
    for k, (mean, lo, hi) in bands.items():
        assert mean == pytest.approx(curve[k])
        assert lo <= mean <= hi and lo < hi


def test_majority_answer_ties_and_none():
    assert M.majority_answer(["3", "4", "4", "3"]) == "3"  # tie: first seen
    assert M.majority_answer([None, "5", None, "6", "6"]) == "6"
    assert M.majority_answer([None, None]) is None


def test_maj_at_n():
    answers = [["25", "25", "24", None], ["7", "8", "8", "7"], [None, None, None, None], ["1", "2", "2", "2"]]
    correct = [[True, True, False, False], [False, True, True, False], [False] * 4, [True, False, False, False]]
    # problem 0: majority 25 correct; 1: tie 7/8 -> 7 (first) wrong; 2: no answer; 3: majority 2 wrong
    assert M.maj_at_n(answers, correct) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="problem 0"):
        M.maj_at_n([["1"]], [[True, False]])
    with pytest.raises(ValueError, match="golds_correct"):
        M.maj_at_n([["1"]], [])


def _naive_problem_layer(x, n_boot, seed):
    """The problem layer written as the loop it stands for (same draws as the vectorised one): the mean of each
    replicate's resampled problems, on the seed-averaged table."""
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, x.shape[1], size=(n_boot, x.shape[1]))
    return np.array([x.mean(axis=0)[probs[b]].mean() for b in range(n_boot)])


def test_seed_problem_bootstrap_problem_layer_equals_the_loop_it_vectorises():
    row = np.random.default_rng(4).normal(size=17)
    x = np.stack([row, row, row])  # three seeds that agree: no seed layer, no seed-by-problem noise
    fast = M.seed_problem_bootstrap([x, 2 * x], n_boot=300, seed=9)
    assert fast.shape == (2, 300)
    assert fast[0] == pytest.approx(_naive_problem_layer(x, 300, 9))
    assert fast[1] == pytest.approx(2 * fast[0])  # one resampling shared by the tables
    y = np.random.default_rng(5).normal(size=(3, 17))
    assert np.array_equal(M.seed_problem_bootstrap([y], 50, seed=1), M.seed_problem_bootstrap([y], 50, seed=1))
    assert not np.array_equal(M.seed_problem_bootstrap([y], 50, seed=1), M.seed_problem_bootstrap([y], 50, seed=2))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        M.seed_problem_bootstrap([y[:1]])


@pytest.mark.parametrize("seeds, t975", [(2, 12.706), (3, 4.303), (5, 2.776)])
def test_seed_layer_is_a_student_t_on_the_per_seed_means(seeds, t975):
    """All the spread between seeds: the interval is mean +- t_{S-1, 0.975} * sd(per-seed means) / sqrt(S), the
    textbook t interval, where resampling two seeds could never leave their range."""
    per_seed = np.linspace(0.1, 0.3, seeds)
    x = np.repeat(per_seed[:, None], 40, axis=1)
    mean, lo, hi = M.mean_interval(x, n_boot=40_000, seed=3)
    half = t975 * per_seed.std(ddof=1) / np.sqrt(seeds)
    assert mean == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.2 - half, 0.2 + half), rel=0.06)


def test_seed_by_problem_noise_is_counted_once():
    """Pure noise (no seed, no problem effect): the seeds' means carry it, so the problem layer must not again."""
    x = np.random.default_rng(6).normal(0.0, 1.0, size=(1, 4, 400))
    cols = M._problem_columns(x)
    assert cols.var() < 0.2 * x[0].mean(axis=0).var()  # the raw column means keep 1/4 of the noise variance
    effect = np.random.default_rng(7).normal(0.0, 1.0, size=400)  # a real problem effect is kept
    y = effect + np.random.default_rng(8).normal(0.0, 0.5, size=(4, 400))
    assert M._problem_columns(y[None]).var() == pytest.approx(effect.var(), rel=0.15)


def test_mean_interval_carries_the_seed_spread_with_a_t_quantile():
    constant = np.full((2, 50), 0.2)
    assert M.mean_interval(constant) == pytest.approx((0.2, 0.2, 0.2))
    by_seed = np.array([[0.1] * 50, [0.3] * 50])  # the old seed bootstrap gave exactly (0.2, 0.1, 0.3)
    mean, lo, hi = M.mean_interval(by_seed)
    assert mean == pytest.approx(0.2) and lo < -0.5 and hi > 0.9
    row = np.random.default_rng(0).normal(0.1, 0.5, size=400)
    mean, lo, hi = M.mean_interval(np.stack([row, row]))  # seeds that agree: the problem bootstrap alone
    assert lo < mean < hi and hi - lo == pytest.approx(2 * 1.96 * 0.5 / 20, rel=0.15)
    one = M.mean_interval(row[None, :])
    assert one[0] == pytest.approx(row.mean()) and math.isnan(one[1]) and math.isnan(one[2])


def test_paired_ratio_cancels_shared_problem_noise():
    row = np.random.default_rng(1).normal(0.2, 0.4, size=60)
    gt = np.stack([row, row + 0.01])
    same = M.paired_ratio_interval(gt, gt)
    assert (same.ratio, same.lo, same.hi) == pytest.approx((1.0, 1.0, 1.0))  # an unpaired bootstrap would spread
    half = M.paired_ratio_interval(gt / 2, gt)
    assert (half.ratio, half.lo, half.hi) == pytest.approx((0.5, 0.5, 0.5))
    assert half.gt[1] < half.gt[0] < half.gt[2] and half.claim[0] == pytest.approx(gt.mean() / 2)


def test_paired_ratio_interval_brackets_the_ratio_and_is_unbounded_when_gt_may_not_gain():
    gt = np.full((2, 100), 0.25)
    claim = np.repeat(np.where(np.arange(100) < 90, 0.25, 0.0)[None, :], 2, axis=0)
    r = M.paired_ratio_interval(claim, gt)
    assert r.ratio == pytest.approx(0.9) and 0.8 < r.lo < 0.9 < r.hi <= 1.0
    rare = np.repeat(np.where(np.arange(10) == 0, 0.5, 0.0)[None, :], 2, axis=0)  # gt gains on one problem of ten
    r = M.paired_ratio_interval(rare, rare)
    assert r.ratio == 1.0 and r.lo == -np.inf and r.gt[1] == 0.0


def test_two_seed_ratio_interval_reaches_beyond_the_two_seeds():
    """Issue 20: random@noclip on toy:strong, per-seed ratios -0.22 and -0.83; the old interval [-0.88, -0.17] was
    the range of the two seeds. An honest interval from two seeds reaches well beyond them."""
    rng = np.random.default_rng(2)
    gt = 0.52 + rng.normal(0.0, 0.3, size=(1, 128)) + rng.normal(0.0, 0.1, size=(2, 128))
    claim = np.array([[-0.116], [-0.437]]) + rng.normal(0.0, 0.1, size=(2, 128))
    per_seed = claim.mean(axis=1) / gt.mean(axis=1)
    r = M.paired_ratio_interval(claim, gt)
    spread = per_seed.max() - per_seed.min()
    assert r.lo < per_seed.min() - spread and r.hi > per_seed.max() + spread
    one = M.paired_ratio_interval(claim[:1], gt[:1])
    assert one.ratio == pytest.approx(per_seed[0]) and math.isnan(one.lo) and math.isnan(one.hi)
    assert math.isnan(one.gt[1]) and math.isnan(one.claim[2])


def test_bootstrap_tables_are_checked():
    with pytest.raises(ValueError, match="shape"):
        M.paired_ratio_interval(np.zeros((2, 5)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="2-D"):
        M.mean_interval(np.zeros(5))
    with pytest.raises(ValueError, match="alpha"):
        M.mean_interval(np.zeros((1, 5)), alpha=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        M.mean_interval(np.array([[np.nan]]))
