"""KOR-Bench tasks: every reference answer verifies (as a model would write it), corrupted ones do not, equivalent
formulas pass by truth table, hostile answers are wrong within the time bound, and the splits hold rules out."""

from __future__ import annotations

import time

import pytest

from studykit import tasks
from studykit.tasks.korbench import CATEGORIES, SIZES, KorBenchTask
from studykit.tasks.korbench import propositional as prop
from studykit.scoring.verify import extract_answer

HOSTILE = [
    "(" * 5000 + "p" + ")" * 5000,
    "~" * 3000 + "p1",
    "&".join(f"p{i}" for i in range(40)),
    "[[" + "];[".join("x" for _ in range(500)) + "]]",
    "10^{10^{10^{10}}}",
    "__import__('os').system('true')",
    "a" * 100_000,
    "[[" * 400 + "]]" * 400,
]


def _corrupt(answer: str) -> str:
    """Change one significant character of the reference (a letter to another letter, a digit to another digit)."""
    inner = answer[2:-2]
    for i in range(len(inner) - 1, -1, -1):
        ch = inner[i]
        if ch.isdigit():
            return "[[" + inner[:i] + str((int(ch) + 1) % 10) + inner[i + 1:] + "]]"
        if ch.isalpha() and ch.isascii():
            new = "B" if ch.upper() == "A" else "A"
            new = new if ch.isupper() else new.lower()
            return "[[" + inner[:i] + new + inner[i + 1:] + "]]"
    return "[[" + inner + "#]]"


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_references_verify_through_the_pipeline(category):
    task = tasks.get(f"korbench:{category}")
    problems = task.load("all")
    assert len(problems) == 250
    completions = [f"<think>reasoning</think> <answer>{p.answer}</answer>" for p in problems]
    agree = sum(task.verify(p, extract_answer(c)) for p, c in zip(problems, completions))
    assert agree == 250, f"{category}: {agree}/250 reference answers verify"


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_corrupted_references_do_not_verify(category):
    task = KorBenchTask(category)
    problems = task.load("all")
    if category == "operation":  # math-verify costs ~0.1 s a check on 2 shared cores: every fifth question
        problems = problems[::5]
    wrong = [p for p in problems if task.verify(p, _corrupt(p.answer))]
    # a corruption can hit an equivalent spelling only where verification is semantic; none of the 250 does
    assert wrong == [], [(p.id, p.answer, _corrupt(p.answer)) for p in wrong[:5]]
    assert not any(task.verify(p, None) or task.verify(p, "") or task.verify(p, "[[]]") for p in problems)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_hostile_answers_score_zero_fast(category):
    task = KorBenchTask(category)
    problems = task.load("test")[:3]
    start = time.monotonic()
    for p in problems:
        for text in HOSTILE:
            assert task.verify(p, text) is False
    assert time.monotonic() - start < 20  # 24 checks; each math check is bounded by math_equal's 2 s deadline


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_split_by_rule(category):
    task = KorBenchTask(category)
    train, test, every = task.load("train"), task.load("test"), task.load("all")
    assert (len(train), len(test), len(every)) == (SIZES["train"], SIZES["test"], SIZES["all"])
    assert {p.meta["rule_id"] for p in train}.isdisjoint({p.meta["rule_id"] for p in test})
    assert {p.meta["rule_id"] for p in test} == {"5", "10", "15", "20", "25"}
    assert tasks.pool_size(f"korbench:{category}", "test") == 50
    assert "### Rule:" in test[0].prompt and "<answer>" in test[0].prompt


def _problem(category, rule_id, idx):
    return next(p for p in KorBenchTask(category).load("all") if (p.meta["rule_id"], p.meta["idx"]) == (rule_id, idx))


def test_logic_formulas_are_compared_by_truth_table():
    task = KorBenchTask("logic")
    p = _problem("logic", "1", "1")  # [[p1&p2];[p3||p4];[(p3&~p4)||(~p3&p4)]], only &,||,~ allowed
    assert task.verify(p, "[[p2 & p1]; [p4 || p3]; [(~p3 & p4) || (p3 & ~p4)]]")
    assert task.verify(p, "[[p2&p1];[p4||p3];[(p3||p4)&(~p3||~p4)]]")
    assert not task.verify(p, "[[p1&p2];[p3||p4];[~(p3=p4)]]")  # equivalent, but `=` is not allowed here
    assert not task.verify(p, "[[p1&p2];[p3||p4];[(p3&p4)||(~p3&~p4)]]")
    assert task.check(p, "[[p1&p2];[p3&p4];[(p3&~p4)||(~p3&p4)]]").parts == (True, False, True)
    q = _problem("logic", "1", "2")  # [[p1=::>p2];[p1=::>~p2];[~p2=::>p1];[p1=p2]]
    assert task.verify(q, "[[~p2=::>~p1];[p2=::>~p1];[~p1=::>p2];[p2=p1]]")
    r = _problem("logic", "2", "18")  # labelled: [[C1=p&!q];...]
    assert task.verify(r, "[[C1=!q&p];[C2=(!p&!q)|(q&p)];[C3=q&!p];[D1=!r&!q];[D2=(q&!r)|(!q&r)];[D3=r&q]]")
    assert not task.verify(r, "[[C2=p&!q];[C1=(p&q)|(!p&!q)];[C3=!p&q];[D1=!q&!r];[D2=(!q&r)|(q&!r)];[D3=q&r]]")
    words = _problem("logic", "9", "81")  # [[Someproductsarenon-top-grade.]]
    assert task.verify(words, "[[Some products are non-top-grade.]]")


def test_propositional_bounds_and_grammar():
    assert prop.parse("p1 =::> (p2 || ~p3)", prop.RULE1) is not None
    assert prop.parse("__import__('os')", prop.RULE1) is None
    assert prop.parse("(" * 100 + "p" + ")" * 100, prop.RULE1) is None  # deeper than MAX_DEPTH
    assert prop.parse("&".join(f"p{i}" for i in range(prop.MAX_ATOMS + 1)), prop.RULE2) is None
    a = prop.parse("&".join(f"p{i}" for i in range(prop.MAX_ATOMS)), prop.RULE2)
    b = prop.parse("!(" + "|".join(f"!p{i}" for i in range(prop.MAX_ATOMS)) + ")", prop.RULE2)
    start = time.monotonic()
    assert prop.equivalent(a, b) and time.monotonic() - start < 1.0
    assert prop.equivalent(prop.parse("p⇑q", prop.RULE2), prop.parse("!p|!q", prop.RULE2))
    assert not prop.equivalent(prop.parse("p>q", prop.RULE2), prop.parse("q>p", prop.RULE2))


def test_operation_math_and_alternatives():
    task = KorBenchTask("operation")
    p = _problem("operation", "2", "17")  # [[3or-41/3]]
    assert task.verify(p, "[[-\\frac{41}{3} or 3]]") and not task.verify(p, "[[3]]")
    s = _problem("operation", "18", "171")  # [[{1,2,4,5}]]
    assert task.verify(s, "[[{5, 4, 2, 1}]]") and not task.verify(s, "[[{1,2,4}]]")
    m = _problem("operation", "23", "221")  # [[((1,2),(9,64))]]: entries in order
    assert not task.verify(m, "[[((2,1),(9,64))]]")


def test_counterfactual_real_life_answer_is_wrong():
    task = KorBenchTask("counterfactual")
    differing = [p for p in task.load("all") if p.meta["real_life_answer"] != p.answer]
    assert len(differing) > 200
    assert not any(task.verify(p, p.meta["real_life_answer"]) for p in differing)
    assert all(task.verify(p, p.answer[2:-2].lower() + ".") for p in differing)


def test_generate_is_seeded_and_has_no_difficulty_knob():
    task = KorBenchTask("cipher")
    assert [p.id for p in task.generate(5, seed=3)] == [p.id for p in task.generate(5, seed=3)]
    with pytest.raises(ValueError, match="difficulty"):
        task.generate(5, difficulty=2)
    with pytest.raises(KeyError):
        tasks.get("korbench:chemistry")


def test_paper_grid_has_the_korbench_cells(tmp_path, monkeypatch):
    from pathlib import Path

    from studykit.study.spec import expand

    (tmp_path / "data").mkdir()
    (tmp_path / "data/deepscaler.jsonl").write_text('{"problem": "1 + 1?", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)
    cells = expand(Path(__file__).resolve().parents[1] / "params/studies/paper.yaml")
    for category in CATEGORIES:
        mine = [c for c in cells if c.config.data.task == f"korbench:{category}"]
        alignment = [c for c in mine if c.config.rq == "alignment"]
        assert len(alignment) == 2  # one per model: pass@k on the held-out rules
        assert all(c.config.data.train_split == "train" for c in mine)
        assert all([s.task for s in c.config.eval.sets] == [f"korbench:{category}"] for c in mine)
        assert all(c.config.eval.sets[0].split == "test" for c in mine)


def test_parts_are_read_with_or_without_brackets():
    task = KorBenchTask("logic")
    p = next(p for p in task.load("all") if p.answer == "[[A];[C]]")
    assert task.verify(p, "A; C") and task.verify(p, "[[A]; [C]]") and task.verify(p, "so the answer is [[A];[C]].")
    assert task.check(p, "[[A]]").reason == "1 parts, expected 2"
    assert task.check(p, "[[A];[B]]").parts == (True, False)
    grid = _problem("puzzle", "8", "71")  # one item per line in the reference
    assert grid.answer.count("\n") == 2
    assert KorBenchTask("puzzle").verify(grid, grid.answer[2:-2].replace("\n", ", "))
