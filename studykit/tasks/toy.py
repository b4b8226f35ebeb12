"""The toy world's task: add five digits.

Prompt `Q d1 d2 d3 d4 d5 =` (digits 1..9), answer the sum. The 9^5 digit tuples are split once, by a
fixed hash, into a held-out pool (`HELD_OUT_SIZE` problems) and a training pool; the toy pretraining
corpus's method traces and every training split draw only from the training pool, so held-out pass@k
measures the method the model learned, not memorised sums. The held-out pool has two halves: `test`
(the first `TEST_SIZE` by hash; the `contaminated` preset's corpus memorises exactly these prompts with
their sums) and `test_clean` (the other `CLEAN_SIZE`, in no corpus of any preset). Splitting the old
512-problem pool in two left the training pool, so every earlier preset's corpus and cached model, and
the first 256 `test` problems, unchanged. Not in the paper: this is studykit's controlled stand-in for a
model-task pair whose alignment (and contamination) we can set.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from functools import lru_cache

from .base import Problem

N_DIGITS = 5
HELD_OUT_SIZE = 512
TEST_SIZE = 256  # load("test"): the first half of the held-out pool (the contaminated preset memorises it)
CLEAN_SIZE = HELD_OUT_SIZE - TEST_SIZE  # load("test_clean"): never in any corpus
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
def held_out_pool() -> tuple[tuple[int, ...], ...]:
    """The fixed held-out digit tuples: the HELD_OUT_SIZE smallest by salted hash (`test` + `test_clean`)."""
    every = itertools.product(range(1, 10), repeat=N_DIGITS)
    return tuple(sorted(every, key=_split_key)[:HELD_OUT_SIZE])


def test_pool() -> tuple[tuple[int, ...], ...]:
    """The `test` split's digit tuples: the first TEST_SIZE of the held-out pool."""
    return held_out_pool()[:TEST_SIZE]


def clean_pool() -> tuple[tuple[int, ...], ...]:
    """The `test_clean` split's digit tuples: the rest of the held-out pool, disjoint from `test`."""
    return held_out_pool()[TEST_SIZE:]


@lru_cache(maxsize=1)
def _test_set() -> frozenset[tuple[int, ...]]:
    return frozenset(held_out_pool())


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
    """`load("test")` and `load("test_clean")` are the two held-out halves; `load("train")` and `generate` draw
    from the training pool.

    Its `diagnose` hook names the method a completion uses (or `recall`: an answer with an empty think block,
    the `contaminated` corpus's form), logged as `method_share/<method>`. Its `recall_prompt` hook is the
    contamination probe's answer-recall prompt.
    """

    name = "toy"
    splits = ("train", "test", "test_clean")
    sizes = {"train": TRAIN_SIZE, "test": TEST_SIZE, "test_clean": CLEAN_SIZE}  # problems per split (known without loading)
    template = "raw"  # the toy tokenizer knows only the toy vocabulary: no instruction text
    diagnostic_categories = {"method_share": ("sum", "count", "max", "recall", "other")}

    def diagnose(self, completion: str) -> dict[str, str]:
        return {"method_share": method_of(completion)}

    def recall_prompt(self, problem: Problem, template: str = "raw", tokenizer=None) -> str:
        """The prompt cut just before the answer, with no reasoning: `Q d1 .. d5 = <think> </think> <answer>`
        (the contaminated corpus's recall form; the probe scores the continuation with `verify`)."""
        return f"{problem.prompt} {RECALL_HEAD}"

    def load(self, split: str = "test") -> list[Problem]:
        if split == "test":
            return [_problem(d, "test") for d in test_pool()]
        if split == "test_clean":
            return [_problem(d, "test_clean") for d in clean_pool()]
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
RECALL_HEAD = "<think> </think> <answer>"  # a recalled answer: no steps in the think block
_METHOD_RE = re.compile(r"^\s*<think>\s+(\S+)")


def method_of(completion: str) -> str:
    """The procedure a toy response names (`sum`, `count`, `max`), `recall` when the think block is empty
    (an answer with no steps), or `other` for anything else."""
    m = _METHOD_RE.match(completion)
    if m and m.group(1) == "</think>":
        return "recall"
    return m.group(1) if m and m.group(1) in METHODS else "other"
