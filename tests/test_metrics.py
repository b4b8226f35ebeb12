"""Tests for studykit.metrics: pass@k against brute force, edge cases, bootstrap, maj@n."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from studykit import metrics as M


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
