"""The problem record and the task interface shared by every task family."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Problem:
    """One verifiable problem.

    `prompt` is the bare question, before any template; `answer` is the reference answer as a string;
    `meta` carries the task name (`meta["task"]`, used to find the verifier) and generator details.
    """

    id: str
    prompt: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def task(self) -> str:
        return self.meta.get("task", "")


@runtime_checkable
class Task(Protocol):
    """A task family: loads or generates problems and decides whether an extracted answer is right.

    Optional hooks (looked up with getattr, so not members here): `diagnose(completion) -> {name: category}`
    with `diagnostic_categories` (shares logged by evaluation and training), and `recall_prompt(problem, template,
    tokenizer) -> str`, the contamination probe's prompt cut just before the answer with no reasoning
    (studykit.probes.contamination; without it, the templated prompt plus `<think> </think> <answer>`)."""

    name: str
    template: str  # default prompt template (see studykit.tasks.templates)

    def load(self, split: str) -> list[Problem]: ...

    def generate(self, n: int, seed: int = 0, difficulty: int = 1) -> list[Problem]: ...

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        """`answer_text` is the extracted answer (see studykit.scoring.verify.extract_answer), never raw eval input.

        Must return False (not raise) on malformed or hostile text, and finish in bounded time.
        """
        ...


def share_diagnostics(task, texts: Sequence[str], prefix: str) -> dict[str, float]:
    """Shares of the categories a task's optional `diagnose(completion) -> {name: category}` hook reports,
    as `{prefix}{name}/{category}` (e.g. the toy task's `method_share/sum`). Categories listed in the task's
    `diagnostic_categories` ({name: categories}) are always reported, 0 when unseen. {} for tasks without the hook.
    """
    diagnose = getattr(task, "diagnose", None)
    if diagnose is None or not texts:
        return {}
    counts: dict[str, Counter] = {}
    for text in texts:
        for name, category in diagnose(text).items():
            counts.setdefault(name, Counter())[category] += 1
    listed = getattr(task, "diagnostic_categories", {})
    out = {}
    for name in dict.fromkeys([*listed, *counts]):
        c = counts.get(name, Counter())
        for category in dict.fromkeys([*listed.get(name, ()), *c]):
            out[f"{prefix}{name}/{category}"] = c[category] / len(texts)
    return out
