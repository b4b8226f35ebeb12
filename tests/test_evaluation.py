"""evaluate_set on fixed completions: pass@k, avg@n, maj@n, format rate and toy method shares."""

from __future__ import annotations

from studykit.evaluation import evaluate_set
from studykit.sampling import Group
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
    res = evaluate_set(_FixedSampler(texts), problems, "toy", template="raw", tokenizer=None, n=4, ks=[1, 4],
                       temperature=1.0, max_new_tokens=16, seed=0)
    m = res.metrics
    assert res.correct_counts.tolist() == [1, 2]
    assert m["eval/toy/pass_at_1"] == (1 / 4 + 2 / 4) / 2 and m["eval/toy/pass_at_4"] == 1.0
    assert m["eval/toy/avg_at_4"] == 3 / 8 and m["eval/toy/maj_at_4"] == 0.5
    assert m["eval/toy/format_rate"] == 7 / 8
    assert m["eval/toy/method_share/sum"] == 7 / 8 and m["eval/toy/method_share/count"] == 1 / 8
