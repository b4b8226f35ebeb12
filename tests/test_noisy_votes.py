"""The noisy verifier (`noisy_ground_truth`: flip rates within binomial bounds, gating, seeding, config checks) and
TTRL's vote/train split (`reward.votes`: the label from every vote, the first group_size trained on)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studykit.config import validate
from studykit.config.sections import ConfigError
from studykit.engine.rollout import collect, trained_part
from studykit.policy.sampling.base import Group
from studykit.scoring import rewards
from studykit.tasks import Problem

PROBLEM = Problem("p0", "1 2 3", "6", {"task": "toy"})
RIGHT, WRONG = "<think> t </think> <answer> 6 </answer>", "<think> t </think> <answer> 5 </answer>"
UNFORMATTED_RIGHT = "the sum is \\boxed{6}"


def _exact(problem, answer):
    return answer is not None and answer.strip() == problem.answer


def within_binomial(hits: int, n: int, q: float, z: float = 4.5) -> bool:
    """`hits` of `n` is within z standard errors of Binomial(n, q) (two-sided; z = 4.5: a false alarm ~7e-6)."""
    return abs(hits / n - q) <= z * math.sqrt(max(q * (1 - q), 1e-12) / n)


def _rates(fn: float, fp: float, n: int = 20000, seed: int = 0) -> tuple[float, int, float, int]:
    """Observed (false-negative hits, correct count, false-positive hits, wrong count) over n formatted samples."""
    reward = rewards.get("noisy_ground_truth", false_negative=fn, false_positive=fp, verify=_exact, seed=seed)
    group = [RIGHT, WRONG] * (n // 2)
    res = reward(group, PROBLEM)
    right, wrong = res.correct, ~res.correct
    fn_hits, fp_hits = int((res.rewards[right] == 0).sum()), int((res.rewards[wrong] == 1).sum())
    return fn_hits, int(right.sum()), fp_hits, int(wrong.sum())


@pytest.mark.parametrize("fn, fp", [(0.14, 0.0), (0.5, 0.0), (0.3, 0.1), (0.9, 0.9)])
def test_flip_rates_are_within_binomial_bounds(fn, fp):
    fn_hits, n_right, fp_hits, n_wrong = _rates(fn, fp)
    assert within_binomial(fn_hits, n_right, fn) and within_binomial(fp_hits, n_wrong, fp)


def test_the_bound_rejects_wrong_rates():
    """The check above can fail: rates 0.05 away from the truth are outside its bounds at this n (over 10 standard
    errors; the bound is 4.5)."""
    fn_hits, n_right, fp_hits, n_wrong = _rates(0.3, 0.1)
    assert not within_binomial(fn_hits, n_right, 0.35) and not within_binomial(fn_hits, n_right, 0.25)
    assert not within_binomial(fp_hits, n_wrong, 0.15) and not within_binomial(fp_hits, n_wrong, 0.05)
    assert not within_binomial(fn_hits, n_right, 0.1)  # swapped rates


def test_no_noise_is_ground_truth_and_full_noise_inverts_it():
    group = [RIGHT, WRONG, UNFORMATTED_RIGHT, "no answer"]
    clean = rewards.get("noisy_ground_truth", verify=_exact, seed=0)(group, PROBLEM)
    assert clean.rewards.tolist() == rewards.get("ground_truth", verify=_exact)(group, PROBLEM).rewards.tolist()
    flip_all = rewards.get("noisy_ground_truth", false_negative=1, false_positive=1, verify=_exact, seed=0)
    flipped = flip_all(group, PROBLEM)
    assert flipped.rewards.tolist() == [0.0, 1.0, 0.0, 0.0]  # gated: the unformatted ones get 0 flipped or not
    assert flipped.correct.tolist() == [True, False, True, False]  # true correctness is reported unflipped
    ungated = rewards.get("noisy_ground_truth", false_negative=1, false_positive=1, verify=_exact, seed=0,
                          format_gate=False)(group, PROBLEM)
    assert ungated.rewards.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_seeding_is_reproducible_per_sample():
    group = [RIGHT, WRONG] * 50
    a = rewards.get("noisy_ground_truth", false_negative=0.5, false_positive=0.5, verify=_exact, seed=3)
    b = rewards.get("noisy_ground_truth", false_negative=0.5, false_positive=0.5, verify=_exact, seed=3)
    first = a(group, PROBLEM).rewards
    assert np.array_equal(first, b(group, PROBLEM).rewards)
    assert not np.array_equal(first, a(group, PROBLEM).rewards)  # the stream moves on
    # the call's generator wins over the seed, one uniform draw per completion: u < q decides a flip
    res = a(group, PROBLEM, rng=np.random.default_rng(7))
    u = np.random.default_rng(7).random(len(group))
    assert np.array_equal(res.rewards, np.where(res.correct, u >= 0.5, u < 0.5).astype(float))
    with pytest.raises(ValueError, match="needs a generator"):
        rewards.get("noisy_ground_truth", verify=_exact)(group, PROBLEM)


@pytest.mark.parametrize("key, value", [("false_negative", 1.5), ("false_positive", -0.1), ("false_negative", True)])
def test_rates_out_of_range_are_refused_by_name(key, value):
    with pytest.raises(TypeError, match=key):
        rewards.get("noisy_ground_truth", **{key: value})
    if not isinstance(value, bool):
        with pytest.raises(ConfigError, match=f"reward.{key}"):
            validate({"reward": {"name": "noisy_ground_truth", key: value}})


def test_config_rates_default_to_zero_only_for_the_noisy_verifier():
    cfg = validate({"reward": {"name": "noisy_ground_truth", "false_negative": 0.14}})
    assert (cfg.reward.false_negative, cfg.reward.false_positive) == (0.14, 0.0)
    same = validate({"reward": {"name": "noisy_ground_truth", "false_negative": 0.14, "false_positive": 0}})
    assert same.config_hash() == cfg.config_hash()
    with pytest.raises(ConfigError, match="reward.false_negative: got 0.1 with reward.name 'ground_truth'"):
        validate({"reward": {"name": "ground_truth", "false_negative": 0.1}})
    plain = validate({})
    assert plain.reward.false_negative is None and plain.reward.votes is None  # old configs: hashes pinned elsewhere


# ---------------------------------------------------------------------------------------------- the vote split


def test_votes_are_checked_against_the_group_size_by_name():
    with pytest.raises(ConfigError, match="reward.votes: got 4 with train.group_size 8"):
        validate({"reward": {"name": "majority_vote", "votes": 4}, "train": {"group_size": 8}})
    with pytest.raises(ConfigError, match="reward.votes: got 16 with reward.name 'ground_truth'"):
        validate({"reward": {"votes": 16}, "train": {"group_size": 8}})
    equal = validate({"reward": {"name": "majority_vote", "votes": 8}, "train": {"group_size": 8}})
    assert equal.reward.votes is None
    assert equal.config_hash() == validate({"reward": {"name": "majority_vote"},
                                            "train": {"group_size": 8}}).config_hash()
    assert validate({"reward": {"name": "majority_vote", "votes": 16}, "train": {"group_size": 8}}).reward.votes == 16


class Canned:
    """Answers each prompt with the given answers, in order; records the n it was asked for."""

    def __init__(self, answers: list[list[str]]):
        self.answers, self.asked = list(answers), []

    def generate(self, prompts, n, **_):
        self.asked.append(n)
        out = []
        for prompt in prompts:
            answers = self.answers.pop(0)
            assert len(answers) == n
            texts = [f"<think> t </think> <answer> {a} </answer>" for a in answers]
            out.append(Group(prompt, [1], texts, [[i] for i in range(n)], [[-0.1]] * n, [False] * n))
        return out


def test_the_label_uses_every_vote_and_the_group_trains_on_the_first_group_size():
    # 8 votes, group 4. Problem 0: the first 4 say 5 (wrong) 3:1, but all 8 vote 6 (right) 5:3, so the label is 6:
    # the trained members 0..3 are paid only where they say 6. Problem 1: votes 5 win 6:2 (wrong label).
    answers = [["5", "5", "5", "6", "6", "6", "6", "6"], ["6", "5", "5", "5", "5", "5", "6", "5"]]
    cfg = validate({"study": "t", "rq": "rq1", "claim": "majority_vote", "algo": {"dynamic_sampling": False},
                    "reward": {"name": "majority_vote", "votes": 8}, "train": {"prompts_per_step": 2, "group_size": 4}})
    problems = [Problem(f"p{i}", "1 2 3", "6", {"task": "toy"}) for i in range(2)]
    sampler = Canned(answers)
    fn = rewards.get("majority_vote", verify=_exact)
    rolls = collect(cfg, sampler, None, fn, lambda n: problems[:n], np.random.default_rng(0), seed=0, template="think")
    assert sampler.asked == [8]
    assert len(rolls) == 8 and rolls.token_ids == [[0], [1], [2], [3]] * 2  # the first 4 of each prompt's 8
    assert rolls.rewards == [0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert rolls.stats["train/label_accuracy"] == pytest.approx(0.5)
    assert rolls.stats["train/accuracy"] == pytest.approx(2 / 8)  # of the trained members (all 16: 7 / 16)
    # a 4-vote label on the first 4 would have been 5 (wrong) for problem 0: label accuracy would be 0
    short = rewards.get("majority_vote", verify=_exact)([f"<answer> {a} </answer>" for a in answers[0][:4]], PROBLEM)
    assert not short.extra["majority_correct"]


def test_trained_part_keeps_a_group_of_group_size_untouched():
    group = Group("q", [1], [RIGHT, WRONG], [[1], [2]], [[-0.1], [-0.2]], [False, False])
    res = rewards.get("ground_truth", verify=_exact)(group.texts, PROBLEM)
    assert trained_part(group, res, 2) == (group, res)
    cut, cut_res = trained_part(group, res, 1)
    assert cut.texts == [RIGHT] and cut_res.rewards.tolist() == [1.0] and cut_res.extra["votes"] == 2


# ---------------------------------------------------------------------------------------------- through the trainer


def _smoke(tmp_path, toy_learner, reward: dict, group_size: int = 4):
    import mlflow

    from studykit.engine import trainer

    cfg = validate({"study": "t", "rq": "rq1", "claim": reward["name"], "reward": reward,
                    "model": {"name": "toy:custom", "toy": toy_learner},
                    "train": {"steps": 2, "prompts_per_step": 2, "group_size": group_size, "max_new_tokens": 16,
                              "mini_batches": 1},
                    "eval": {"every": 0, "n_samples": 2, "ks": [1], "sets": [{"task": "toy", "limit": 4}]},
                    "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ck")}})
    result = trainer.train(cfg, progress=False)
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    return run.data.metrics, lambda key: [m.value for m in client.get_metric_history(result.run_id, key)]


def test_a_noisy_verifier_run_logs_how_often_its_reward_agrees_with_the_truth(tmp_path, toy_learner):
    # every correct completion missed, no wrong one paid: every reward is 0, so it agrees exactly where wrong
    metrics, history = _smoke(tmp_path, toy_learner, {"name": "noisy_ground_truth", "false_negative": 1.0})
    agree, acc = history("train/reward_accuracy"), history("train/accuracy")
    assert len(agree) == 2 and agree == pytest.approx([1 - a for a in acc])
    assert history("train/reward_mean") == [0.0, 0.0]


def test_a_vote_larger_than_the_group_runs_and_logs_label_accuracy(tmp_path, toy_learner):
    metrics, history = _smoke(tmp_path, toy_learner, {"name": "majority_vote", "votes": 8})
    labels = history("train/label_accuracy")
    assert len(labels) == 2 and all(0 <= v <= 1 for v in labels)
    assert all(0 <= v <= 1 for v in history("train/reward_accuracy"))
    assert all(k <= 2 for k in history("train/kept_groups"))
