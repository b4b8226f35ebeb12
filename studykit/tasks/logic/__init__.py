"""Procedural logic puzzles with exact verifiers, in the spirit of SynLogic (not part of the paper,
which trains on math; studykit adds them as a second task family whose alignment can be varied through
the difficulty knob).

`PUZZLES` maps a puzzle type to its module; each module has
`generate(rng: random.Random, difficulty: int) -> (prompt, answer, meta)` and
`verify(meta: dict, answer_text: str) -> bool` (never raises; answers over 2,000 characters are wrong).
Difficulty is 1, 2 or 3 (bigger is harder); each module's docstring says what it changes.

`LogicTask(kind)` is the `Task` for one type (`kind="game24"`, task name `logic:game24`) or for all
types mixed (`kind=None`, task name `logic`; problem i gets type `types[i % len(types)]` in sorted
order). Every problem is generated from its own seed string
`logic|<kind>|<seed>|<difficulty>|<i>|<attempt>`, so `generate(n)` is a prefix of `generate(n + m)`
and the output is identical across runs and machines. Inside one call a puzzle whose prompt already
appeared is redrawn (next attempt, at most 50).

Splits: `load("train")` is `generate(1024, seed=0, split="train")` and `load("test")` is
`generate(256, seed=1, split="test")`. Disjoint seeds alone are not enough: small puzzle spaces repeat
(with seeds alone, 113 of 256 difficulty-1 Boolean-expression test prompts were also in train). So
every prompt also belongs to a fixed pool by a salted SHA-256 of its text (a quarter of all prompts
are test-pool), and with `split=` a puzzle from the other pool is redrawn. Train and test can
therefore never share a prompt, whatever the seeds; without `split=`, `generate` draws from both pools.

Problem ids are `logic:<kind>-<seed>-<i>`; `meta` holds `task` (`logic:<kind>`, the registry name of
the problem's own type, so `studykit.tasks.get(meta["task"])` verifies it), `kind`, `difficulty`,
`seed`, `index`, `split` (only when generated for a split) and whatever the type's verifier needs.
Everything in meta is JSON-serialisable, and a problem is verifiable from its meta alone.
"""

from __future__ import annotations

import hashlib
import random
from types import ModuleType
from typing import Any

from ..base import Problem
from . import boolean_expr, cryptarithm, dyck, game24, grid_path, knights_knaves, sudoku4, word_sort
from ._common import MAX_ANSWER_CHARS, check_difficulty

__all__ = ["PUZZLES", "LogicTask", "MAX_ANSWER_CHARS", "generate_one", "pool_of", "verify_meta"]

PUZZLES: dict[str, ModuleType] = {
    "knights_knaves": knights_knaves,
    "boolean_expr": boolean_expr,
    "dyck": dyck,
    "game24": game24,
    "cryptarithm": cryptarithm,
    "sudoku4": sudoku4,
    "word_sort": word_sort,
    "grid_path": grid_path,
}
TRAIN_SEED, TEST_SEED = 0, 1
TRAIN_SIZE, TEST_SIZE = 1024, 256
_MAX_ATTEMPTS = 50
_MAX_POOL_ATTEMPTS = 400
_POOL_SALT = b"studykit-logic-split-v1"
SPLITS = ("train", "test")


def pool_of(prompt: str) -> str:
    """The split a prompt belongs to: `test` for a fixed quarter of all prompts, else `train`."""
    return "test" if hashlib.sha256(_POOL_SALT + prompt.encode()).digest()[0] < 64 else "train"


def _puzzle(kind: Any) -> ModuleType:
    if kind not in PUZZLES:
        raise ValueError(f"logic puzzle kind must be one of {sorted(PUZZLES)}, got {kind!r}")
    return PUZZLES[kind]


def generate_one(kind: str, seed: int, difficulty: int, index: int, attempt: int = 0) -> Problem:
    """Problem `index` of type `kind` for this seed and difficulty (deterministic)."""
    module = _puzzle(kind)
    rng = random.Random(f"logic|{kind}|{seed}|{difficulty}|{index}|{attempt}")
    prompt, answer, extra = module.generate(rng, difficulty)
    meta = {"task": f"logic:{kind}", "kind": kind, "difficulty": difficulty, "seed": seed, "index": index}
    meta.update(extra)
    return Problem(f"logic:{kind}-{seed}-{index}", prompt, answer, meta)


def verify_meta(meta: dict[str, Any], answer_text: Any) -> bool:
    """Check an answer against a problem's meta; ValueError if meta names no known puzzle kind."""
    if not isinstance(meta, dict):
        raise ValueError(f"problem meta must be a dict, got {type(meta).__name__}")
    return _puzzle(meta.get("kind")).verify(meta, answer_text)


def _with_split(problem: Problem, split: str | None) -> Problem:
    if split is None:
        return problem
    return Problem(problem.id, problem.prompt, problem.answer, {**problem.meta, "split": split})


class LogicTask:
    """The `Task` for one puzzle type (`kind`) or all of them mixed (`kind=None`)."""

    splits = SPLITS
    sizes = {"train": TRAIN_SIZE, "test": TEST_SIZE}  # problems per split (known without generating)
    template = "think"

    def __init__(self, kind: str | None = None, difficulty: int = 1):
        if kind is not None:
            _puzzle(kind)
        self.kind = kind
        self.kinds = [kind] if kind is not None else sorted(PUZZLES)
        self.name = "logic" if kind is None else f"logic:{kind}"
        self.difficulty = check_difficulty(difficulty)

    def __repr__(self) -> str:
        return f"LogicTask(kind={self.kind!r}, difficulty={self.difficulty})"

    def generate(self, n: int, seed: int = 0, difficulty: int = 1, split: str | None = None) -> list[Problem]:
        """`n` problems (types in turn when mixed), distinct prompts where the puzzle space allows;
        with `split`, only prompts of that split's pool (see `pool_of`)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        difficulty = check_difficulty(difficulty)
        seen: set[str] = set()
        out = []
        for i in range(n):
            problem = self._draw(self.kinds[i % len(self.kinds)], seed, difficulty, i, split, seen)
            seen.add(problem.prompt)
            out.append(problem)
        return out

    @staticmethod
    def _draw(kind: str, seed: int, difficulty: int, i: int, split: str | None, seen: set[str]) -> Problem:
        """The first unseen in-pool draw; after `_MAX_ATTEMPTS` repeats, the first in-pool repeat."""
        fallback, repeats = None, 0
        for attempt in range(_MAX_POOL_ATTEMPTS):
            problem = generate_one(kind, seed, difficulty, i, attempt)
            if split is not None and pool_of(problem.prompt) != split:
                continue
            if problem.prompt not in seen:
                return _with_split(problem, split)
            fallback, repeats = fallback or problem, repeats + 1
            if repeats >= _MAX_ATTEMPTS:
                break
        if fallback is None:
            raise RuntimeError(f"logic:{kind}: no {split} puzzle found for index {i}")  # pragma: no cover
        return _with_split(fallback, split)

    def load(self, split: str = "test") -> list[Problem]:
        """`train`: 1024 problems, seed 0; `test`: 256, seed 1; from disjoint pools, at this task's difficulty."""
        if split == "train":
            return self.generate(TRAIN_SIZE, seed=TRAIN_SEED, difficulty=self.difficulty, split="train")
        if split == "test":
            return self.generate(TEST_SIZE, seed=TEST_SEED, difficulty=self.difficulty, split="test")
        raise ValueError(f"logic task split must be one of {list(SPLITS)}, got {split!r}")

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        """Exact check of an extracted answer; False (never an exception) for any bad answer text."""
        if answer_text is None:
            return False
        return verify_meta(problem.meta, answer_text)
