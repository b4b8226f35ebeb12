"""reasoning-gym tasks: seeded generation, disjoint splits, reference answers score 1 in the bounded worker,
wrong and hostile answers score 0 (the whitelist stops eval-bound text before sympy sees it), time limit kills."""

from __future__ import annotations

import time

import pytest

from studykit import tasks
from studykit.tasks import reasoning_gym as rgt

FAST = ["countdown", "futoshiki", "maze", "propositional_logic"]  # zebra puzzles take ~0.1-5 s each to generate


@pytest.mark.parametrize("name", FAST)
def test_reference_verifies_and_wrong_does_not(name):
    task = tasks.get(f"rg:{name}")
    problems = task.generate(3, seed=0)
    assert [p.id for p in problems] == [p.id for p in task.generate(3, seed=0)]
    assert all(task.verify(p, p.answer) for p in problems)
    if name == "propositional_logic":  # open-ended: another item's conclusion may follow too; a negation does not
        assert not any(task.verify(p, f"¬({p.answer})") for p in problems)
    else:
        assert not any(task.verify(p, q.answer) for p in problems for q in problems if q.answer != p.answer)
    assert not task.verify(problems[0], None) and not task.verify(problems[0], "")


def test_zebra_puzzles_one_item():
    task = tasks.get("rg:zebra_puzzles")
    p = task.generate(1, seed=0)[0]
    assert task.verify(p, p.answer) and task.verify(p, p.answer.upper())
    assert not task.verify(p, "nobody")


def test_hostile_answers_score_zero_fast():
    countdown = tasks.get("rg:countdown").generate(1, seed=0)[0]
    logic = tasks.get("rg:propositional_logic").generate(1, seed=0)[0]
    start = time.monotonic()
    for text in ["__import__('os').system('true')", "9**9**9**9", "(" * 3000 + "1" + ")" * 3000, "1/0", "x" * 10**5]:
        assert not tasks.get("rg:countdown").verify(countdown, text)
    for text in ["(" * 3000 + "P" + ")" * 3000, " ∧ ".join("abcdefghijklmnopqrstuvwxyz"), "eval('1')"]:
        assert not tasks.get("rg:propositional_logic").verify(logic, text)
    assert time.monotonic() - start < 15


def test_time_limit_kills_the_scorer():
    task = rgt.ReasoningGymTask("maze")
    p = task.generate(1, seed=0)[0]
    assert task.verify(p, p.answer) is True
    worker = rgt._STATE["worker"]
    assert rgt.score(p.meta, p.answer, timeout_s=0.0) == 0.0  # no time at all: no answer, the worker is killed
    assert worker.proc.poll() is not None and rgt._STATE["worker"] is None
    assert task.verify(p, p.answer) is True  # a fresh worker answers again


def test_splits_are_disjoint_and_registered():
    task = tasks.get("rg:maze")
    train = {p.prompt for p in task.generate(30, seed=0, split="train")}
    test = {p.prompt for p in task.generate(30, seed=0, split="test")}
    assert train.isdisjoint(test)
    assert tasks.splits("rg:maze") == ("train", "test") and tasks.pool_size("rg:maze", "test") == 64
    with pytest.raises(KeyError):
        tasks.get("rg:puzzle24")  # not enabled: studykit's logic:game24 does that job
    with pytest.raises(ValueError, match="difficulty"):
        rgt.ReasoningGymTask("maze", difficulty=4)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_propositional_logic_refuses_restated_premises(difficulty):
    # Regression (issue 20): reasoning-gym pays any non-tautological consequence, so the conjunction of the premises
    # scored 1.0 on nearly every item and a copied compound premise did too.
    task = rgt.ReasoningGymTask("propositional_logic", difficulty=difficulty)
    problems = task.generate(6, seed=0, split="train")
    compound = 0
    for p in problems:
        premises = p.meta["rg_entry"]["metadata"]["premises"]
        assert task.verify(p, p.answer)  # the intended conclusion still pays
        assert not task.verify(p, " ∧ ".join(f"({x})" for x in premises))
        assert not task.verify(p, " ∧ ".join(f"({x})" for x in reversed(premises)))  # reordered: same table
        for x in premises:
            if any(op in x for op in "∧∨→↔¬"):
                compound += 1
                assert not task.verify(p, x)
                assert not task.verify(p, f"{x} ∧ {x}")  # padded copy: still the premise's truth table
    assert compound


def test_restated_premises_check_reads_tables_not_strings():
    meta = {"variables": ["P", "Q", "R"], "premises": ["(P ∧ Q)", "(Q → R)"]}
    assert rgt.restates_premises("(Q ∧ P)", meta) and rgt.restates_premises("P ∧ Q ∧ R", meta)  # P∧Q∧(Q→R)
    assert rgt.restates_premises("(¬Q ∨ R)", meta)  # the second premise, rewritten
    assert not rgt.restates_premises("(P ∧ R)", meta) and not rgt.restates_premises("R", meta)
    assert not rgt.restates_premises("(P ∧", meta)  # unparsable: the scorer gives it 0 anyway
    many = {"variables": [chr(ord("A") + i) for i in range(9)], "premises": ["A"]}
    assert rgt.restates_premises("A", many)  # past the bounds: refused, never a 2^n blow-up


def test_propositional_logic_huge_answers_stay_bounded():
    task = tasks.get("rg:propositional_logic")
    p = task.generate(1, seed=0)[0]
    premises = p.meta["rg_entry"]["metadata"]["premises"]
    start = time.monotonic()
    for text in [" ∧ ".join(f"({x})" for x in premises * 500), "¬" * 10**5 + "P", "(P ∨ ¬P) ∧ " * 10**4 + "P"]:
        assert not task.verify(p, text)
    assert time.monotonic() - start < 10
