"""Reward fidelity: how often a training reward that is not ground truth agrees with true correctness
(`train/reward_accuracy`), how often majority vote's label is right (`train/label_accuracy`), the share of groups
with no reward variance (`train/zero_var_frac`), and the loud warning of a run where no group ever had any."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from studykit.scoring import rewards
from studykit.engine import trainer
from studykit.config.schema import validate
from studykit.engine.rollout import collect
from studykit.policy.sampling.base import Group
from studykit.tasks import Problem


class Canned:
    """A sampler that answers each prompt with the given completions (answers), in order."""

    def __init__(self, answers: list[list[str]]):
        self.answers = list(answers)

    def generate(self, prompts, n, **_):
        out = []
        for prompt in prompts:
            texts = [f"<think> t </think> <answer> {a} </answer>" for a in self.answers.pop(0)]
            out.append(Group(prompt, [1], texts, [[1]] * n, [[-0.1]] * n, [False] * n))
        return out


def _collect(reward: str, answers: list[list[str]]):
    cfg = validate({"study": "t", "rq": "rq1", "claim": reward, "reward": {"name": reward},
                    "algo": {"dynamic_sampling": False},
                    "train": {"prompts_per_step": len(answers), "group_size": len(answers[0])}})
    problems = [Problem(f"p{i}", "1 2 3", "6", {"task": "toy"}) for i in range(len(answers))]
    fn = rewards.get(reward, verify=lambda p, a: a == p.answer)
    return collect(cfg, Canned(answers), None, fn, lambda n: problems[:n], np.random.default_rng(0), seed=0,
                   template="think").stats


def test_majority_vote_logs_reward_and_label_accuracy():
    # group 0: majority 6 (right): rewards agree with correctness on all 4; group 1: majority 5 (wrong): the
    # three 5s are paid and wrong, the 6 unpaid and right -> 0 of 4 agree; group 2: every answer 7, no variance.
    stats = _collect("majority_vote", [["6", "6", "6", "5"], ["5", "5", "5", "6"], ["7", "7", "7", "7"]])
    assert stats["train/reward_accuracy"] == pytest.approx((4 + 0 + 0) / 12)
    assert stats["train/label_accuracy"] == pytest.approx(1 / 3)
    assert stats["train/zero_var_frac"] == pytest.approx(1 / 3)


def test_ground_truth_logs_no_fidelity_but_the_zero_variance_share():
    stats = _collect("ground_truth", [["6", "5", "5", "5"], ["5", "5", "5", "5"]])
    assert "train/reward_accuracy" not in stats and "train/label_accuracy" not in stats
    assert stats["train/zero_var_frac"] == pytest.approx(0.5)


def test_incorrect_reward_disagrees_with_the_truth():
    stats = _collect("incorrect", [["6", "5", "5", "5"]])  # pays the three wrong 5s, not the right 6
    assert stats["train/reward_accuracy"] == 0.0 and "train/label_accuracy" not in stats


def test_a_run_where_no_group_ever_varied_warns_loudly(tmp_path, toy_learner, capsys):
    cfg = validate({"study": "t", "rq": "rq1", "claim": "random", "reward": {"name": "random", "p": 0.0},
                    "model": {"name": "toy:custom", "toy": toy_learner},
                    "train": {"steps": 2, "prompts_per_step": 2, "group_size": 4, "max_new_tokens": 16,
                              "mini_batches": 1},
                    "eval": {"every": 0, "n_samples": 2, "ks": [1], "sets": [{"task": "toy", "limit": 4}]},
                    "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ck")}})
    result = trainer.train(cfg, progress=False)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.metrics["train/no_variance_run"] == 1.0 and run.data.metrics["train/zero_var_frac"] == 1.0
    assert "no group in the whole run (2 steps) had any reward variance" in run.data.tags["warning"]
    assert "WARNING" in capsys.readouterr().err
    assert run.data.metrics["train/reward_accuracy"] == pytest.approx(1 - run.data.metrics["train/accuracy"])


def test_the_verdict_notes_a_run_without_reward_variance():
    import pandas as pd

    from studykit.analysis import verdicts
    from studykit.analysis.runs import Counts

    ids = [f"p{i}" for i in range(8)]
    pre = np.array([2] * 8)

    def run(rid, claim, flat):
        return {"run_id": rid, "rq": "rq1", "claim": claim, "condition": claim, "model": "m", "task": "toy",
                "seed": "0", "alignment": None, "metrics.train/no_variance_run": flat}

    runs = pd.DataFrame([run("g", "ground_truth", 0.0), run("c", "random", 1.0)])
    counts = {rid: {0: Counts(0, 8, ids, pre), 5: Counts(5, 8, ids, pre + 2)} for rid in ("g", "c")}
    table = verdicts.verdict_table(runs, pd.DataFrame(columns=["run_id", "key", "step", "value"]), counts)
    notes = dict(zip(table["claim"], table["note"]))
    assert "NO REWARD VARIANCE on seeds [0]" in notes["random"] and "NO REWARD VARIANCE" not in notes["ground_truth"]
