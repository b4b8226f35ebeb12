"""The toy world's task: add five digits.

Prompt `Q d1 d2 d3 d4 d5 =` (digits 1..9), answer the sum. The 9^5 digit tuples are split once, by a
fixed hash, into a held-out test pool (`TEST_SIZE` problems) and a training pool; the toy pretraining
corpus and every training split draw only from the training pool, so held-out pass@k measures the
method the model learned, not memorised sums. Not in the paper: this is studykit's controlled stand-in
for a model-task pair whose alignment we can set.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from functools import lru_cache

from .base import Problem

N_DIGITS = 5
TEST_SIZE = 512
TRAIN_SIZE = 1024  # load("train"): this many distinct training-pool problems, seed 0
_SPLIT_SALT = b"studykit-toy-v1"
_PROMPT_RE = re.compile(r"^Q((?: [1-9]){5}) =$")


def prompt_for(digits: tuple[int, ...]) -> str:
    return "Q " + " ".join(map(str, digits)) + " ="


def digits_of(prompt: str) -> tuple[int, ...]:
    m = _PROMPT_RE.match(prompt.strip())
    if not m:
        raise ValueError(f"not a toy prompt (expected 'Q d1 d2 d3 d4 d5 =' with digits 1..9): {prompt!r}")
    return tuple(int(d) for d in m.group(1).split())


def _split_key(digits: tuple[int, ...]) -> bytes:
    return hashlib.sha256(_SPLIT_SALT + bytes(digits)).digest()


@lru_cache(maxsize=1)
def test_pool() -> tuple[tuple[int, ...], ...]:
    """The fixed held-out digit tuples: the TEST_SIZE smallest by salted hash."""
    every = itertools.product(range(1, 10), repeat=N_DIGITS)
    return tuple(sorted(every, key=_split_key)[:TEST_SIZE])


@lru_cache(maxsize=1)
def _test_set() -> frozenset[tuple[int, ...]]:
    return frozenset(test_pool())


def is_held_out(digits: tuple[int, ...]) -> bool:
    return tuple(digits) in _test_set()


def sample_train_digits(rng: random.Random) -> tuple[int, ...]:
    """A uniformly random digit tuple from the training pool (rejects held-out ones)."""
    while True:
        digits = tuple(rng.randint(1, 9) for _ in range(N_DIGITS))
        if not is_held_out(digits):
            return digits


def _problem(digits: tuple[int, ...], split: str) -> Problem:
    pid = "toy-" + "".join(map(str, digits))
    return Problem(pid, prompt_for(digits), str(sum(digits)), {"task": "toy", "split": split, "digits": list(digits)})


class ToyTask:
    """`load("test")` is the held-out pool; `load("train")` and `generate` draw from the training pool.

    Its `diagnose` hook names the method a completion uses, logged as `method_share/<method>`.
    """

    name = "toy"
    splits = ("train", "test")
    sizes = {"train": TRAIN_SIZE, "test": TEST_SIZE}  # problems per split (known without loading)
    template = "raw"  # the toy tokenizer knows only the toy vocabulary: no instruction text
    diagnostic_categories = {"method_share": ("sum", "count", "max", "other")}

    def diagnose(self, completion: str) -> dict[str, str]:
        return {"method_share": method_of(completion)}

    def load(self, split: str = "test") -> list[Problem]:
        if split == "test":
            return [_problem(d, "test") for d in test_pool()]
        if split == "train":
            return self.generate(TRAIN_SIZE, seed=0)
        raise ValueError(f"toy task split must be one of {list(self.splits)}, got {split!r}")

    def generate(self, n: int, seed: int = 0, difficulty: int = 1) -> list[Problem]:
        """`n` distinct training problems; `difficulty` is accepted for the interface and unused."""
        rng = random.Random(seed)
        seen: dict[tuple[int, ...], None] = {}
        while len(seen) < n:
            seen.setdefault(sample_train_digits(rng))
        return [_problem(d, "train") for d in seen]

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        if answer_text is None:
            return False
        text = answer_text.strip()
        if not re.fullmatch(r"-?\d{1,4}", text):
            return False
        return int(text) == int(problem.answer)


METHODS = ("sum", "count", "max")
_METHOD_RE = re.compile(r"^\s*<think>\s+(\S+)")


def method_of(completion: str) -> str:
    """The procedure a toy response names (`sum`, `count`, `max`), or `other` for anything else."""
    m = _METHOD_RE.match(completion)
    return m.group(1) if m and m.group(1) in METHODS else "other"
