"""KOR-Bench (Ma et al., arXiv 2410.06526): five categories of questions under rules a model cannot know
from pretraining. The study paper (arXiv 2508.21188) uses Operation and Counterfactual as its strong, clean
logic cells and Cipher, Puzzle and Logic as weak ones.

Tasks `korbench:<category>` for `CATEGORIES`; data shipped in `studykit/data/korbench/` (25 rules and 250
questions per category, Apache-2.0, source and commit in its README.md).

Prompt: the rule's text and the question, as KOR-Bench poses them (rule first, then the question with its own
answer-format line), then a line asking for the `[[...]]` answer inside studykit's `<answer>` tags; the
task's template (`think`) wraps it. The verifier reads the `[[...]]` block inside the extracted answer (the
`<answer>` tags' content, or `\\boxed{}`'s, as for every studykit task: rewards, evaluation and `studykit score`
share `studykit.scoring.verify.extract_answer`), so a bare `[[...]]` outside the tags is not read.
Verification: `answers` reads the `[[...]]` block and its parts, and each category's `check_part` compares a
part with the reference part; a multi-part answer is right when every part is. Nothing the model writes is
evaluated as code.

Splits, by rule (a held-out rule's questions never appear in training): `test` holds the questions of every
fifth rule (rule ids 5, 10, 15, 20, 25: 5 rules, 50 questions), `train` the other 20 rules (200 questions),
`all` every question (250). Each category lists its rules grouped by tag, so every fifth rule holds out rules of
every tag group (operation: 1 basic, 2 advanced, 2 challenge; cipher and logic: one of each five-rule group;
puzzle: riddle, math, math+space, space, math+space).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from types import ModuleType
from typing import Any

from ..base import Problem
from . import cipher, counterfactual, logic, operation, puzzle
from .answers import MAX_ANSWER_CHARS, MAX_PARTS, Verdict, block, parts

__all__ = ["CATEGORIES", "KorBenchTask", "Verdict", "judge", "SIZES", "SPLITS", "TEST_RULE_EVERY"]

CATEGORIES: dict[str, ModuleType] = {
    "operation": operation,
    "counterfactual": counterfactual,
    "cipher": cipher,
    "puzzle": puzzle,
    "logic": logic,
}
SPLITS = ("train", "test", "all")
TEST_RULE_EVERY = 5
SIZES = {"train": 200, "test": 50, "all": 250}  # per category (checked against the data in the tests)
_ASK = (
    "\n\nWrite the final answer inside <answer> </answer> tags, in double square brackets as asked above, "
    "for example <answer>[[your answer]]</answer>."
)


def split_of(rule_id: str) -> str:
    return "test" if int(rule_id) % TEST_RULE_EVERY == 0 else "train"


def _rows(category: str, name: str) -> list[dict[str, Any]]:
    ref = resources.files("studykit").joinpath("data", "korbench", category, f"{name}.jsonl")
    text = ref.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def render_prompt(rule: dict[str, Any], question: str) -> str:
    return f"### Rule: {rule['title']}\n\n{rule['rule_content']}\n\n### Question:\n{question}{_ASK}"


@lru_cache(maxsize=None)
def _problems(category: str) -> tuple[Problem, ...]:
    rules = {r["idx"]: r for r in _rows(category, "rule")}
    out = []
    for row in _rows(category, "sample"):
        rule = rules[row["rule_id"]]
        meta = {
            "task": f"korbench:{category}", "category": category, "rule_id": row["rule_id"], "idx": row["idx"],
            "rule_title": rule["title"], "split": split_of(row["rule_id"]),
            "multi_select": any(s in row["question"].lower() for s in logic.MULTI_SELECT),
        }
        if "real_life_answer" in row:
            meta["real_life_answer"] = row["real_life_answer"]
        pid = f"korbench:{category}-{row['rule_id']}-{row['idx']}"
        out.append(Problem(pid, render_prompt(rule, row["question"]), row["answer"], meta))
    return tuple(out)


def judge(category: str, reference: str, answer_text: Any, meta: dict[str, Any]) -> Verdict:
    """The verdict on `answer_text` (the `<answer>` tags' content) against the reference `[[...]]` answer."""
    if not isinstance(answer_text, str) or not answer_text.strip():
        return Verdict(False, reason="no answer")
    if len(answer_text) > MAX_ANSWER_CHARS:
        return Verdict(False, reason="too long")
    refs = parts(block(reference))
    found = parts(block(answer_text), expected=len(refs))
    if len(found) > MAX_PARTS or len(found) != len(refs):
        return Verdict(False, reason=f"{len(found)} parts, expected {len(refs)}")
    check = CATEGORIES[category].check_part
    matched = []
    for ref, ans in zip(refs, found):
        try:
            matched.append(bool(ans) and bool(check(ref, ans, meta)))
        except Exception:  # noqa: BLE001 - untrusted text: any failure is a wrong answer
            matched.append(False)
    return Verdict(all(matched), tuple(matched))


class KorBenchTask:
    """The `Task` for one KOR-Bench category (module docstring)."""

    splits = SPLITS
    sizes = SIZES
    template = "think"

    def __init__(self, category: str) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"KOR-Bench category must be one of {sorted(CATEGORIES)}, got {category!r}")
        self.category = category
        self.name = f"korbench:{category}"

    def __repr__(self) -> str:
        return f"KorBenchTask({self.category!r})"

    def load(self, split: str = "test") -> list[Problem]:
        if split not in SPLITS:
            raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {list(SPLITS)}")
        problems = _problems(self.category)
        return [p for p in problems if split == "all" or p.meta["split"] == split]

    def generate(self, n: int, seed: int = 0, difficulty: int | None = None, split: str = "train") -> list[Problem]:
        """`n` distinct questions of `split` drawn with `random.Random(seed)`. KOR-Bench's questions are fixed,
        so there is no difficulty knob: a `difficulty` other than None is an error, not silently ignored."""
        import random

        if difficulty is not None:
            raise ValueError(f"{self.name}: KOR-Bench has no difficulty setting (got difficulty={difficulty!r})")
        pool = self.load(split)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(pool):
            raise ValueError(f"{self.name}: n must be an int in [0, {len(pool)}] for split {split!r}, got {n!r}")
        return random.Random(seed).sample(pool, n)

    def check(self, problem: Problem, answer_text: str | None) -> Verdict:
        """The full verdict (per-part results and the reason) for an extracted answer."""
        return judge(self.category, problem.answer, answer_text, problem.meta)

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        return self.check(problem, answer_text).correct
