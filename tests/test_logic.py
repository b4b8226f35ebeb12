"""Tests for studykit.tasks.logic: reference answers verify, corrupted ones do not, alternative valid
answers pass, hostile text is rejected fast, generation is deterministic, and the registry works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from studykit.tasks import Problem, get
from studykit.tasks.logic import PUZZLES, LogicTask, generate_one, pool_of
from studykit.tasks.logic import cryptarithm, dyck, game24, grid_path, knights_knaves, sudoku4

N_INSTANCES = 50


def _flip_role(answer: str) -> str:
    first, rest = answer.split(", ", 1)
    name, role = first.split(": ")
    return f"{name}: {'knave' if role == 'knight' else 'knight'}, {rest}"


def _swap_dyck(answer: str) -> str:
    closers = answer.split()
    closers[0] = next(c for c in dyck.CLOSERS if c != closers[0])
    return " ".join(closers)


def _bump_literal(answer: str) -> str:
    tokens = game24.tokenize(answer)
    k = next(i for i, t in enumerate(tokens) if t.isdigit())
    tokens[k] = str(int(tokens[k]) + 1)
    return " ".join(tokens)


def _swap_letters(answer: str) -> str:
    pairs = [p.split("=") for p in answer.split(", ")]
    pairs[0][1], pairs[1][1] = pairs[1][1], pairs[0][1]
    return ", ".join(f"{k}={v}" for k, v in pairs)


def _swap_cells(answer: str) -> str:
    rows = answer.split("/")
    rows[0] = rows[0][1] + rows[0][0] + rows[0][2:]
    return "/".join(rows)


def _swap_words(answer: str) -> str:
    words = answer.split(", ")
    words[0], words[1] = words[1], words[0]
    return ", ".join(words)


CORRUPT = {
    "knights_knaves": _flip_role,
    "boolean_expr": lambda a: "False" if a == "True" else "True",
    "dyck": _swap_dyck,
    "game24": _bump_literal,
    "cryptarithm": _swap_letters,
    "sudoku4": _swap_cells,
    "word_sort": _swap_words,
    "grid_path": lambda a: a[:-1],
}


def test_every_type_has_a_corruption():
    assert sorted(CORRUPT) == sorted(PUZZLES)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
@pytest.mark.parametrize("kind", sorted(PUZZLES))
def test_reference_verifies_and_corruption_fails(kind, difficulty):
    task = get(f"logic:{kind}")
    problems = task.generate(N_INSTANCES, seed=7, difficulty=difficulty)
    assert len(problems) == N_INSTANCES
    for p in problems:
        assert p.meta["kind"] == kind and p.meta["difficulty"] == difficulty
        assert task.verify(p, p.answer), (p.prompt, p.answer)
        assert task.verify(p, f"  {p.answer}. "), "surrounding space / full stop must be tolerated"
        bad = CORRUPT[kind](p.answer)
        assert bad != p.answer
        assert not task.verify(p, bad), (p.prompt, bad)
        assert not task.verify(p, "")


def test_difficulty_changes_size():
    def size(kind: str, d: int) -> int:
        return len(generate_one(kind, 0, d, 0).prompt)

    for kind in ("knights_knaves", "boolean_expr", "dyck", "word_sort", "grid_path"):
        assert size(kind, 1) < size(kind, 3), kind
    assert len(generate_one("game24", 0, 3, 0).meta["numbers"]) == 5
    assert generate_one("game24", 0, 3, 0).meta["target"] != 24


# ---- alternative valid answers -------------------------------------------------------------------


def test_game24_any_valid_expression_passes():
    meta = {"numbers": [1, 2, 3, 4], "target": 24}
    for expr in ("1*2*3*4", "(1+2+3)*4", "4*3*2*1", "(4+2)*(3+1)", "4 × (3 + 2 + 1)", "(1+2+3)*4 = 24"):
        assert game24.verify(meta, expr), expr
    for expr in ("1*2*3*4*1", "2*3*4", "(1+2+3)*4 = 25", "1+2+3+4", "12*2", "(1+2+3)*4 == 24"):
        assert not game24.verify(meta, expr), expr
    assert game24.verify({"numbers": [8, 3, 8, 3], "target": 24}, "8/(3-8/3)")  # needs exact fractions


def test_game24_solver_solutions_all_verify():
    for p in get("logic:game24").generate(10, seed=3, difficulty=1):
        numbers, target = p.meta["numbers"], p.meta["target"]
        exprs = []
        for expr in game24._search([(game24.Fraction(n), str(n)) for n in numbers], game24.Fraction(target)):
            exprs.append(expr)
            if len(exprs) == 6:
                break
        assert len(set(exprs)) > 1, numbers  # several different solutions...
        assert all(game24.verify(p.meta, e) for e in exprs)  # ...and every one of them is accepted


def test_grid_path_longer_path_passes():
    checked = 0
    for p in get("logic:grid_path").generate(30, seed=5, difficulty=2):
        grid, (r, c) = p.meta["grid"], p.meta["start"]
        back = {"U": "D", "D": "U", "L": "R", "R": "L"}
        for m, (dr, dc) in grid_path.MOVES.items():
            rr, cc = r + dr, c + dc
            if 0 <= rr < len(grid) and 0 <= cc < len(grid) and grid[rr][cc] != "#":
                detour = m + back[m] + p.answer
                assert len(detour) > len(p.answer) and grid_path.verify(p.meta, detour)
                checked += 1
                break
        too_long = "LR" * p.meta["max_len"] + p.answer
        assert not grid_path.verify(p.meta, too_long)
    assert checked > 20


def test_grid_path_rejects_walls_and_edges():
    meta = {"grid": ["S.#", ".##", "..G"], "start": [0, 0], "goal": [2, 2], "max_len": 6}
    assert grid_path.verify(meta, "DDRR")
    assert grid_path.verify(meta, "d d r r")
    assert not grid_path.verify(meta, "RRDD")  # wall
    assert not grid_path.verify(meta, "UDDRR")  # off the grid
    assert not grid_path.verify(meta, "DDRRX")
    assert not grid_path.verify(meta, "DDRRLR" + "LR")  # over max_len


def test_cryptarithm_any_consistent_mapping_passes():
    meta = {"words": ["AB", "CD", "EF"], "hints": {}}
    assert cryptarithm.count_solutions(meta["words"], {}) > 1
    assert cryptarithm.verify(meta, "A=1, B=2, C=3, D=5, E=4, F=7")  # 12 + 35 = 47
    assert cryptarithm.verify(meta, "a:1; b:4; c:2; d:5; e:3; f:9")  # 14 + 25 = 39
    assert not cryptarithm.verify(meta, "A=1, B=2, C=3, D=5, E=4, F=8")  # sum wrong
    assert not cryptarithm.verify(meta, "A=1, B=2, C=3, D=5, E=4")  # a letter missing
    assert not cryptarithm.verify(meta, "A=1, B=2, C=3, D=5, E=4, F=7, G=0")  # extra letter
    assert not cryptarithm.verify(meta, "A=1, B=1, C=3, D=6, E=4, F=7")  # not one-to-one
    assert not cryptarithm.verify(meta, "A=0, B=2, C=4, D=5, E=4, F=7")  # leading zero
    assert not cryptarithm.verify({**meta, "hints": {"A": 1, "B": 4}}, "A=1, B=2, C=3, D=5, E=4, F=7")


def test_cryptarithm_generated_are_unique():
    for d in (1, 2, 3):
        for p in get("logic:cryptarithm").generate(10, seed=2, difficulty=d):
            assert cryptarithm.count_solutions(p.meta["words"], p.meta["hints"]) == 1


def test_sudoku_any_valid_grid_passes():
    meta = {"givens": ["1...", "....", "....", "...."]}
    assert sudoku4.count_solutions([[1, 0, 0, 0]] + [[0] * 4 for _ in range(3)]) > 1
    assert sudoku4.verify(meta, "1234/3412/2143/4321")
    assert sudoku4.verify(meta, "1 2 3 4\n3 4 1 2\n4 3 2 1\n2 1 4 3")
    assert not sudoku4.verify(meta, "2143/3412/1234/4321")  # valid grid, breaks the given 1
    assert not sudoku4.verify(meta, "1234/1234/1234/1234")  # rows fine, columns broken
    assert not sudoku4.verify(meta, "1234/3412/2143/432")  # 15 digits


def test_generated_sudoku_unique():
    for d in (1, 2, 3):
        for p in get("logic:sudoku4").generate(10, seed=4, difficulty=d):
            grid = [[int(ch) if ch != "." else 0 for ch in row] for row in p.meta["givens"]]
            assert sudoku4.count_solutions(grid) == 1


def test_knights_answer_forms():
    p = generate_one("knights_knaves", 0, 2, 0)
    parts = p.answer.split(", ")
    assert p.meta["statements"] and len(knights_knaves.solutions(p.meta["statements"])) == 1
    assert LogicTask("knights_knaves").verify(p, ", ".join(reversed(parts)))
    assert LogicTask("knights_knaves").verify(p, " and ".join(x.replace(": ", " is a ") for x in parts).upper())
    assert not LogicTask("knights_knaves").verify(p, ", ".join(parts[:-1]))  # someone missing
    assert not LogicTask("knights_knaves").verify(p, ", ".join(parts + parts[:1]))  # someone twice
    assert not LogicTask("knights_knaves").verify(p, p.answer + ", Zed: knight")


def test_dyck_answer_forms():
    meta = {"prefix": "([{<"}
    assert dyck.verify(meta, "> } ] )") and dyck.verify(meta, ">}])") and dyck.verify(meta, "([{<>}])")
    assert not dyck.verify(meta, "> } ]")  # incomplete
    assert not dyck.verify(meta, "> } ] ) )")  # too many
    assert not dyck.verify(meta, "() > } ] )")  # not closing-only
    assert not dyck.verify(meta, "} > ] )")  # wrong order


def test_word_sort_separators():
    meta = {"words": ["pear", "apple", "app"]}
    assert LogicTask("word_sort").verify(Problem("x", "", "", {"kind": "word_sort", **meta}), "app apple pear")
    assert not LogicTask("word_sort").verify(Problem("x", "", "", {"kind": "word_sort", **meta}), "apple app pear")
    assert not LogicTask("word_sort").verify(Problem("x", "", "", {"kind": "word_sort", **meta}), "app apple")


# ---- hostile input ---------------------------------------------------------------------------------

HOSTILE = [
    None,
    123,
    "",
    "A" * 1_000_000,
    "__import__('os').system('echo pwned')",
    "(" * 100_000 + "1" + ")" * 100_000,
    "(" * 190 + "8" + ")" * 9,
    "2**999999",
    "9" * 1999,
    "1/0",
    "８/(３-８/３)",
    "٨/(٣-٨/٣)",
    "Ａ=1, Ｂ=2",
    "🙂" * 1500,
    "\x00\x01\x02",
    "True" * 600,
    "]" * 3000,
    "R" * 1999,
]


@pytest.mark.parametrize("kind", sorted(PUZZLES))
def test_hostile_answers_are_false_and_fast(kind):
    problems = [generate_one(kind, 0, d, 0) for d in (1, 2, 3)]
    start = time.perf_counter()
    for p in problems:
        for text in HOSTILE:
            assert LogicTask(kind).verify(p, text) is False, (kind, str(text)[:40])
    assert time.perf_counter() - start < 2.0


def test_game24_hostile_but_wellformed():
    meta = {"numbers": [8, 3, 8, 3], "target": 24}
    assert not game24.verify(meta, "8/(3-3)*8")  # division by zero is invalid, not an exception
    assert not game24.verify(meta, "(" * 13 + "8" + ")" * 13 + "/(3-8/3)")  # nesting cap
    assert game24.verify(meta, "(" * 12 + "8" + ")" * 12 + "/(3-8/3)")
    assert not game24.verify(meta, "-8/(3-8/3)*-1")
    assert not game24.verify(meta, "8/(3-8/3)\n__import__('os')")
    assert not game24.verify({"numbers": "8383", "target": 24}, "8/(3-8/3)")  # malformed meta


# ---- determinism, registry, splits -----------------------------------------------------------------


def _dump(problems: list[Problem]) -> str:
    return json.dumps([[p.id, p.prompt, p.answer, p.meta] for p in problems], sort_keys=True)


def test_deterministic_and_seed_sensitive():
    task = get("logic")
    assert _dump(task.generate(24, seed=3, difficulty=2)) == _dump(task.generate(24, seed=3, difficulty=2))
    assert _dump(task.generate(24, seed=3)) != _dump(task.generate(24, seed=4))
    assert _dump(task.generate(8, seed=3)) == _dump(task.generate(16, seed=3)[:8])


def test_deterministic_across_processes():
    code = (
        "from studykit.tasks import get; import json;"
        "print(json.dumps([[p.prompt, p.answer] for p in get('logic').generate(16, seed=9, difficulty=3)]))"
    )
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed, "OMP_NUM_THREADS": "1"}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outs.append(run.stdout)
    assert outs[0] == outs[1] and outs[0].strip()


def test_registry_single_and_mixed():
    one = get("logic:game24")
    assert one.name == "logic:game24" and one.template == "think"
    problems = one.generate(5, seed=2)
    assert [p.id for p in problems] == [f"logic:game24-2-{i}" for i in range(5)]
    assert {p.meta["kind"] for p in problems} == {"game24"}
    mixed = get("logic")
    assert mixed.name == "logic"
    problems = mixed.generate(2 * len(PUZZLES), seed=0)
    assert {p.meta["kind"] for p in problems} == set(PUZZLES)
    assert len({p.id for p in problems}) == len(problems)
    with pytest.raises(ValueError, match="kind must be one of"):
        get("logic:nope")
    with pytest.raises(ValueError, match="difficulty"):
        mixed.generate(3, difficulty=4)
    with pytest.raises(ValueError, match="split"):
        mixed.load("dev")


def test_verifiable_from_meta_alone_after_json():
    for p in get("logic").generate(2 * len(PUZZLES), seed=11, difficulty=3):
        meta = json.loads(json.dumps(p.meta))
        clone = Problem("other-id", "", "", meta)
        task = get(meta["task"])
        assert task.verify(clone, p.answer)
        assert not task.verify(clone, CORRUPT[meta["kind"]](p.answer))


def test_load_splits_are_disjoint_pools():
    task = LogicTask("boolean_expr")  # a small puzzle space: seeds alone would repeat prompts
    train, test = task.load("train"), task.load("test")
    assert len(train) == 1024 and len(test) == 256
    assert _dump(train) == _dump(task.generate(1024, seed=0, split="train"))
    assert _dump(test) == _dump(task.generate(256, seed=1, split="test"))
    assert {p.meta["split"] for p in train} == {"train"} and {p.meta["split"] for p in test} == {"test"}
    assert all(pool_of(p.prompt) == "train" for p in train) and all(pool_of(p.prompt) == "test" for p in test)
    assert len({p.prompt for p in test}) == 256
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    seeds_only = {p.prompt for p in task.generate(1024, seed=0)} & {p.prompt for p in task.generate(256, seed=1)}
    assert seeds_only, "the pools matter only if disjoint seeds alone can repeat a prompt"


def test_mixed_load_sizes_and_ids():
    test = LogicTask(None, difficulty=2).load("test")
    assert len(test) == 256 and len({p.id for p in test}) == 256
    assert {p.meta["difficulty"] for p in test} == {2}
    assert {p.meta["kind"] for p in test} == set(PUZZLES)
    with pytest.raises(ValueError, match="difficulty"):
        LogicTask(None, difficulty=0)
    with pytest.raises(ValueError, match="split"):
        LogicTask(None).generate(2, split="dev")
