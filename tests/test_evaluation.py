"""evaluate_set on fixed completions: pass@k, avg@n, maj@n, format rate and toy method shares."""

from __future__ import annotations

from studykit.engine.evaluation import evaluate_set
from studykit.policy.sampling import Group
from studykit.tasks import get


class _FixedSampler:
    def __init__(self, texts_per_prompt):
        self.texts = texts_per_prompt

    def generate(self, prompts, n, **kwargs):
        return [Group(p, [], texts=t[:n]) for p, t in zip(prompts, self.texts)]


def _done(x):
    return f"<think> sum 1 2 3 4 {x} </think> <answer> {x} </answer>"


def test_scores_fixed_completions():
    problems = get("toy").load("test")[:2]
    right = [problems[0].answer, problems[1].answer]
    texts = [
        [_done(right[0]), _done("7"), _done("7"), "<think> count 1 2 3 4 5 </think> 5"],  # majority wrong
        [_done(right[1]), _done(right[1]), _done("3"), _done("4")],                        # majority right
    ]
    res = evaluate_set(_FixedSampler(texts), problems, "toy", task=get("toy"), template="raw", tokenizer=None, n=4,
                       ks=[1, 4],
                       temperature=1.0, max_new_tokens=16, seed=0)
    m = res.metrics
    assert res.correct_counts.tolist() == [1, 2]
    assert m["eval/toy/pass_at_1"] == (1 / 4 + 2 / 4) / 2 and m["eval/toy/pass_at_4"] == 1.0
    assert m["eval/toy/avg_at_4"] == 3 / 8 and m["eval/toy/maj_at_4"] == 0.5
    assert m["eval/toy/format_rate"] == 7 / 8
    assert m["eval/toy/method_share/sum"] == 7 / 8 and m["eval/toy/method_share/count"] == 1 / 8
    assert m["eval/toy/method_share/max"] == 0.0  # the task's diagnostics hook lists every method
    assert not any("method_share" in k for k in evaluate_set(
        _FixedSampler(texts), problems, "toy", task=get("math500"), template="raw", tokenizer=None, n=4, ks=[1],
        temperature=1.0, max_new_tokens=16, seed=0).metrics)  # a task without the hook logs no shares


def test_maj_at_n_votes_by_math_equivalence_like_the_majority_vote_reward():
    from studykit.scoring import rewards
    from studykit.tasks import Problem

    half = Problem("half", "What is one half?", "\\frac{1}{2}", {"task": "math500"})
    third = Problem("third", "What is one third?", "\\frac{1}{3}", {"task": "math500"})
    spellings = ["1/2", "\\frac{1}{2}", "\\dfrac12", "0.3", "0.3"]  # string vote: 0.3 wins 2 to 1
    texts = [[_done(a) for a in spellings], [_done(a) for a in ["0.3", "1/3", "0.3", "\\frac13", "1/4"]]]
    res = evaluate_set(_FixedSampler(texts), [half, third], "math500", task=get("math500"), template="raw",
                       tokenizer=None, n=5,
                       ks=[1], temperature=1.0, max_new_tokens=16, seed=0)
    assert res.correct_counts.tolist() == [3, 2]
    assert res.metrics["eval/math500/maj_at_5"] == 0.5  # half: 3 spellings, 1 answer; third: 2-2 tie, 0.3 seen first
    vote = rewards.get("majority_vote", format_gate=False)
    expected = [vote(t, p).extra["majority_correct"] for t, p in zip(texts, [half, third])]
    assert expected == [True, False]
    assert res.problem_ids == ["half", "third"]
    record = res.counts_record(7)
    assert record == {"set": "math500", "step": 7, "n": 5, "problem_ids": ["half", "third"], "correct_counts": [3, 2]}
