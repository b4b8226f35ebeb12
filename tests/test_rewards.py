"""Tests for studykit.scoring.rewards: every condition, gating, seeding, hostile input, regressions."""

from __future__ import annotations

import numpy as np
import pytest

from studykit.scoring import rewards
from studykit import tasks
from studykit.tasks import Problem

PROBLEM = tasks.get("toy").load("test")[0]
GOLD = int(PROBLEM.answer)


def good(ans) -> str:
    return f"<think> sum {' '.join(map(str, PROBLEM.meta['digits']))} </think> <answer> {ans} </answer>"


RIGHT, WRONG = good(GOLD), good(GOLD + 1)
UNFORMATTED_RIGHT = f"the sum is \\boxed{{{GOLD}}}"  # extractable and correct, but no think/answer tags
NO_ANSWER = "<think> no idea </think>"


def test_registry_names_and_errors():
    assert set(rewards.names()) == {"ground_truth", "random", "incorrect", "format", "majority_vote", "self_certainty",
                                    "noisy_ground_truth"}
    with pytest.raises(KeyError, match="allowed names: .*ground_truth"):
        rewards.get("groundtruth")
    with pytest.raises(TypeError, match="'temperature'"):
        rewards.get("ground_truth", temperature=1.0)
    with pytest.raises(TypeError, match="'p'"):
        rewards.get("random", p=1.5, seed=0)
    with pytest.raises(TypeError, match="'format_gate'"):
        rewards.get("format", format_gate="yes")


def test_ground_truth_and_gating():
    group = [RIGHT, WRONG, UNFORMATTED_RIGHT, NO_ANSWER]
    res = rewards.get("ground_truth")(group, PROBLEM)
    assert res.rewards.dtype == np.float64 and res.correct.dtype == bool
    assert res.rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert res.correct.tolist() == [True, False, True, False]  # true correctness ignores the gate
    assert res.format_ok.tolist() == [True, True, False, False]
    ungated = rewards.get("ground_truth", format_gate=False)(group, PROBLEM)
    assert ungated.rewards.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_format_reward_multiline_and_not_gated():
    multiline = f"<think>\nfirst line\nsecond line\n</think>\n<answer>\n{GOLD + 3}\n</answer>"
    res = rewards.get("format")([multiline, UNFORMATTED_RIGHT, RIGHT], PROBLEM)
    assert res.rewards.tolist() == [1.0, 0.0, 1.0]
    assert res.correct.tolist() == [False, True, True]


def test_incorrect_never_pays_correct_answers():
    """Regression: the paper's released code paid correct answers under the 'incorrect' reward."""
    group = [RIGHT, WRONG, NO_ANSWER, good("banana"), f"\\boxed{{{GOLD + 2}}}"]
    res = rewards.get("incorrect")(group, PROBLEM)
    assert res.rewards.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]  # last: wrong but unformatted -> gated
    ungated = rewards.get("incorrect", format_gate=False)(group, PROBLEM)
    assert ungated.rewards.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    assert res.correct.tolist() == [True, False, False, False, False]


def test_random_is_seeded_and_uses_no_global_state():
    group = [RIGHT] * 64
    np.random.seed(123)
    a = rewards.get("random", seed=7)(group, PROBLEM).rewards
    np.random.seed(999)
    b = rewards.get("random", seed=7)(group, PROBLEM).rewards
    assert np.array_equal(a, b) and 10 < a.sum() < 54
    fn = rewards.get("random", seed=7)
    first, second = fn(group, PROBLEM).rewards, fn(group, PROBLEM).rewards
    assert not np.array_equal(first, second)  # the seeded stream advances between groups
    c = rewards.get("random")(group, PROBLEM, rng=np.random.default_rng(7)).rewards
    assert np.array_equal(a, c)  # the call's rng and the seed option give the same stream
    with pytest.raises(ValueError, match="rng="):
        rewards.get("random")(group, PROBLEM)


def test_random_p_and_gating():
    rng = np.random.default_rng(0)
    ones = rewards.get("random", p=1.0)([RIGHT, UNFORMATTED_RIGHT, WRONG], PROBLEM, rng=rng)
    assert ones.rewards.tolist() == [1.0, 0.0, 1.0]
    assert ones.correct.tolist() == [True, True, False]
    zeros = rewards.get("random", p=0.0, seed=1)([RIGHT] * 8, PROBLEM)
    assert zeros.rewards.sum() == 0
    many = rewards.get("random", p=0.2, seed=3)([RIGHT] * 4000, PROBLEM)
    assert abs(many.rewards.mean() - 0.2) < 0.03


def test_majority_vote_basic_tie_and_empty():
    fn = rewards.get("majority_vote")
    res = fn([good(10), good(12), good(" 12 "), WRONG, good(10), good(12), NO_ANSWER], PROBLEM)
    assert res.rewards.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert res.extra["majority_answer"] == "12" and res.extra["majority_count"] == 3
    tie = fn([good(5), good(6), good(6), good(5)], PROBLEM)
    assert tie.rewards.tolist() == [1.0, 0.0, 0.0, 1.0]  # tie -> the answer seen first
    empty = fn([NO_ANSWER, "garbage", NO_ANSWER], PROBLEM)
    assert empty.rewards.tolist() == [0.0, 0.0, 0.0] and empty.extra["majority_answer"] is None


def test_majority_vote_reports_whether_pseudo_label_is_right():
    res = rewards.get("majority_vote")([RIGHT, RIGHT, WRONG], PROBLEM)
    assert res.extra["majority_correct"] is True
    res = rewards.get("majority_vote")([WRONG, WRONG, RIGHT], PROBLEM)
    assert res.extra["majority_correct"] is False and res.rewards.tolist() == [1.0, 1.0, 0.0]


def test_majority_vote_gating_pays_only_formatted_voters():
    group = [UNFORMATTED_RIGHT, UNFORMATTED_RIGHT, RIGHT, WRONG]
    res = rewards.get("majority_vote")(group, PROBLEM)
    assert res.rewards.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert rewards.get("majority_vote", format_gate=False)(group, PROBLEM).rewards.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_majority_vote_clusters_equivalent_math_answers():
    prob = Problem("m1", "What is 1/2?", "\\frac{1}{2}", {"task": "math500"})
    ans = ["\\frac{1}{2}", "0.5", "3", "3", "1/2"]
    group = [f"<think> x </think> <answer> {a} </answer>" for a in ans]
    always_false = lambda problem, answer: False  # noqa: E731 - keeps the math task loader out of this test
    res = rewards.get("majority_vote", verify=always_false)(group, prob)
    assert res.rewards.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    plain = rewards.get("majority_vote", verify=always_false, max_clusters=0)(group, prob)
    assert plain.rewards.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]  # string equality only: '3' wins
    no_time = rewards.get("majority_vote", verify=always_false, cluster_budget_s=0)(group, prob)
    assert no_time.rewards.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]  # budget spent: string equality


def test_self_certainty():
    lp = [[-0.1, -0.3], [-2.0, -4.0], [], [-1.0]]
    group = [RIGHT, WRONG, "", UNFORMATTED_RIGHT]
    ungated = rewards.get("self_certainty", format_gate=False)(group, PROBLEM, logprobs=lp)
    assert ungated.rewards == pytest.approx([-0.2, -3.0, rewards.LOGPROB_FLOOR, -1.0])
    gated = rewards.get("self_certainty")(group, PROBLEM, logprobs=lp)
    # gated completions get the group's lowest signal (here the empty one's floor), never the (maximal) 0
    assert gated.rewards == pytest.approx([-0.2, -3.0, rewards.LOGPROB_FLOOR, rewards.LOGPROB_FLOOR])
    with pytest.raises(ValueError, match="sampler must return"):
        rewards.get("self_certainty")(group, PROBLEM)
    with pytest.raises(ValueError, match="3 logprob lists for 4"):
        rewards.get("self_certainty")(group, PROBLEM, logprobs=lp[:3])


@pytest.mark.parametrize("gate", [False, True])
def test_self_certainty_never_pays_an_empty_completion_best(gate):
    # Regression: an empty / zero-token completion scored 0.0, the maximum of a mean log-prob, so entropy
    # minimisation without the format gate rewarded saying nothing most of all.
    group = [RIGHT, "", RIGHT]
    res = rewards.get("self_certainty", format_gate=gate)(group, PROBLEM, logprobs=[[-0.5, -0.2], [], [-3.0]])
    assert res.rewards[1] < res.rewards[0] and res.rewards[1] <= res.rewards.min()
    assert res.rewards[1] == rewards.LOGPROB_FLOOR


def test_self_certainty_clips_non_finite():
    res = rewards.get("self_certainty")([RIGHT], PROBLEM, logprobs=[[-np.inf, float("nan"), 0.0, -1e9]])
    assert res.rewards == pytest.approx([-75.0])


def test_hostile_completions_and_verifier_errors_do_not_raise():
    def boom(problem, answer):
        raise RuntimeError("verifier crashed")

    hostile = [None, 42, "<answer>" * 20000, "\\boxed{" * 20000, good("9" * 5000), RIGHT]
    for name in rewards.names():
        opts = {"seed": 0} if name in ("random", "noisy_ground_truth") else {}
        lp = [[-1.0]] * len(hostile) if name == "self_certainty" else None
        res = rewards.get(name, **opts)(hostile, PROBLEM, logprobs=lp)
        assert res.correct.tolist() == [False] * 5 + [True], name  # true correctness under every condition
        crashed = rewards.get(name, verify=boom, **opts)(hostile, PROBLEM, logprobs=lp)
        assert not crashed.correct.any()
        assert len(res.rewards) == len(hostile) and np.isfinite(res.rewards).all()


def test_problem_without_task_is_a_clear_error():
    with pytest.raises(ValueError, match=r"meta\['task'\]"):
        rewards.get("ground_truth")([RIGHT], Problem("x", "Q 1 1 1 1 1 =", "5"))
    res = rewards.get("ground_truth", verify=lambda p, a: a == "5")(["<think>a</think><answer>5</answer>"],
                                                                   Problem("x", "q", "5"))
    assert res.rewards.tolist() == [1.0]


def test_empty_group():
    res = rewards.get("ground_truth")([], PROBLEM)
    assert res.rewards.shape == (0,) and res.correct.shape == (0,)
