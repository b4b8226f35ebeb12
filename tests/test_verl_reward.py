"""`studykit.integrations.verl.compute_score` (verl's custom reward) agrees with studykit's own reward, completion by
completion, hostile completions included, within the verifier's time bound; the estimators verl lacks give
studykit's advantages group by group. No verl import here (bench/verl_handoff.sh checks against verl itself)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from studykit.scoring import rewards
from studykit.engine.grpo import compute_advantages
from studykit.integrations import verl_translate as tr
from studykit.integrations.verl import compute_score
from studykit.integrations.verl_estimators import group_advantages
from studykit.tasks import get as get_task

HOSTILE = [
    "{" * 100_000,                                             # nested braces, unbalanced
    "\\boxed{" * 5_000 + "1" + "}" * 5_000,                    # deeply nested boxed
    "<answer>__import__('os').system('touch /tmp/pwned')</answer>",
    "<think>x</think> <answer>" + "9" * 300_000 + "</answer>",  # huge answer
    "<think>" + "a" * 2_000_000 + "</think> <answer>1</answer>",  # huge reasoning
    "<think>x</think> <answer>10^{10^{10^{10}}}</answer>",      # a sympy bomb
    "",
]


def _row(problem, cfg_reward: dict, split="train", task=None):
    task = task or problem.meta["task"]
    return tr.row(problem, 0, task=task, template="think", source=tr.data_source(task, None if split == "train"
                                                                                  else split),
                  reward=cfg_reward, split=split, timeout_s=None)


def _score(row, text):
    return compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"])


def _completions(answer: str) -> list:
    return [f"<think>work\nmore</think> <answer>{answer}</answer>", "<think>w</think> <answer>nope</answer>",
            f"no format \\boxed{{{answer}}}", f"<answer>{answer}</answer>", None, 12345, *HOSTILE]


@pytest.mark.parametrize("task", ["math500", "logic:dyck", "toy"])
@pytest.mark.parametrize("name,gate", [("ground_truth", True), ("ground_truth", False), ("incorrect", True),
                                       ("format", True)])
def test_compute_score_agrees_with_studykit_reward(task, name, gate):
    t = get_task(task)
    problem = t.load("test")[3]
    row = _row(problem, {"name": name, "format_gate": gate, "p": 0.5, "seed": 0})
    own = rewards.get(name, format_gate=gate, verify=t.verify)
    bound = 2.0 + 5.0  # math-verify's deadline (studykit.scoring.verify, 2 s) plus room for a worker start on a busy machine
    for text in _completions(problem.answer):
        t0 = time.monotonic()
        got = _score(row, text)
        assert time.monotonic() - t0 < bound, repr(text)[:60]
        mine = own([text if isinstance(text, str) else ""], problem)
        assert (got["score"], got["acc"], got["format"]) == (mine.rewards[0], float(mine.correct[0]),
                                                             float(mine.format_ok[0])), repr(text)[:60]
        assert got["studykit_problem_id"] == problem.id and got["studykit_set"] == ""
    right = _score(row, _completions(problem.answer)[0])
    assert right["acc"] == 1.0 and right["format"] == 1.0  # the table has a correct completion in it


def test_eval_rows_score_correctness_without_gate_and_name_their_set():
    problem = get_task("math500").load("test")[0]
    row = _row(problem, tr.reward_info(_cfg(), evaluation=True), split="m500", task="math500")
    got = _score(row, f"\\boxed{{{problem.answer}}}")  # unformatted but right
    assert got == {"score": 1.0, "acc": 1.0, "format": 0.0, "studykit_set": "m500", "studykit_problem_id": problem.id}


def test_random_is_reproducible_per_completion_and_bernoulli_p():
    problem = get_task("toy").load("test")[0]
    row = _row(problem, {"name": "random", "format_gate": False, "p": 0.3, "seed": 7})
    texts = [f"<think>{i}</think> <answer>{i}</answer>" for i in range(400)]
    first = [_score(row, t)["score"] for t in texts]
    assert first == [_score(row, t)["score"] for t in texts]  # the same completion, the same draw
    assert 0.2 < np.mean(first) < 0.4
    other_seed = _row(problem, {"name": "random", "format_gate": False, "p": 0.3, "seed": 8})
    assert first != [_score(other_seed, t)["score"] for t in texts]
    gated = _row(problem, {"name": "random", "format_gate": True, "p": 1.0, "seed": 7})
    assert _score(gated, "no tags")["score"] == 0.0 and _score(gated, texts[0])["score"] == 1.0


def test_noisy_ground_truth_flips_at_its_rates_reproducibly_per_completion():
    """The exported rates reach compute_score: over 2,000 distinct right and 2,000 wrong completions the flip rates
    fall within 4.5 binomial standard errors of false_negative 0.3 and false_positive 0.1; the same completion gets
    the same flip; rates of 0 give ground truth itself."""
    cfg = _cfg(reward={"name": "noisy_ground_truth", "false_negative": 0.3, "false_positive": 0.1})
    info = tr.reward_info(cfg, evaluation=False)
    assert (info["false_negative"], info["false_positive"]) == (0.3, 0.1)
    problem = get_task("toy").load("test")[0]
    row = _row(problem, info)
    right = [f"<think>{i}</think> <answer>{problem.answer}</answer>" for i in range(2000)]
    wrong = [f"<think>{i}</think> <answer>{problem.answer}9</answer>" for i in range(2000)]
    paid_right = np.array([_score(row, t)["score"] for t in right])
    paid_wrong = np.array([_score(row, t)["score"] for t in wrong])
    assert all(_score(row, t)["acc"] == 1.0 for t in right[:50]) and all(_score(row, t)["acc"] == 0.0 for t in wrong[:50])
    for observed, rate in ((1 - paid_right.mean(), 0.3), (paid_wrong.mean(), 0.1)):
        assert abs(observed - rate) < 4.5 * np.sqrt(rate * (1 - rate) / 2000), (observed, rate)
    assert [_score(row, t)["score"] for t in right[:200]] == paid_right[:200].tolist()
    clean = _row(problem, {**info, "false_negative": 0.0, "false_positive": 0.0})
    assert [_score(clean, t)["score"] for t in right[:100] + wrong[:100]] == [1.0] * 100 + [0.0] * 100
    assert any("identical completions of one problem share a draw" in d for d in tr.departures(cfg))
    assert tr.refusals(cfg) == []
    power = _cfg(train={"steps": 0}, eval={"sampler": "power"})
    assert [r for r in tr.refusals(power) if r.startswith("eval.sampler 'power': power sampling is evaluation-only")]


@pytest.mark.parametrize("name", ["majority_vote", "self_certainty"])
def test_group_and_logprob_rewards_are_refused(name):
    problem = get_task("toy").load("test")[0]
    with pytest.raises(ValueError, match=name):
        _score(_row(problem, {"name": name, "format_gate": True, "p": 0.5, "seed": 0}), "x")


def test_a_data_source_that_is_not_studykits_is_refused():
    with pytest.raises(ValueError, match="studykit/<task>"):
        compute_score("openai/gsm8k", "x", "1", {})
    problem = get_task("toy").load("test")[0]
    assert compute_score("studykit/toy", f"<think>a</think> <answer>{problem.answer}</answer>", problem.answer,
                         None)["score"] == 1.0  # no extra_info: ground truth with the gate


@pytest.mark.parametrize("estimator", ["nsr", "psr", "nsr_reinforce", "psr_reinforce", "w_reinforce"])
def test_estimators_for_verl_are_studykits_per_group(estimator):
    scores = torch.tensor([1., 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1])
    index = np.array(["a", "b", "c"] * 4, dtype=object)  # interleaved groups, as verl's batch may be
    got = group_advantages(scores, index, estimator, lam=0.25)
    for uid in "abc":
        rows = [i for i, u in enumerate(index) if u == uid]
        want = compute_advantages(scores[rows].view(1, -1), estimator, lam=0.25).view(-1)
        assert torch.allclose(got[rows], want)
    with pytest.raises(ValueError, match="uid"):
        group_advantages(scores, None, estimator)


def _cfg(**sections):
    from studykit.config.schema import validate

    return validate({"model": {"name": "Qwen/Qwen2.5-7B", "finetune": "lora", "dtype": "bfloat16"},
                     "data": {"task": "math500", "train_split": "test"}, **sections})
