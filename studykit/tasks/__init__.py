"""Task registry: `get(name, **options)` returns a task object, `names()` lists what `get` accepts.

Names: `toy`; `math500`, `aime24`, `amc23` (shipped), `math` (any JSONL/JSON/parquet file: `path=`),
`deepscaler` (a local file via `path=`, or the hub when `hub=True` and online); `logic` (every puzzle
type mixed) and `logic:<type>` for one type (see `studykit.tasks.logic.PUZZLES`).
"""

from __future__ import annotations

from typing import Any

from .base import Problem, Task, share_diagnostics

__all__ = ["Problem", "Task", "get", "names", "share_diagnostics", "verifier"]

_MATH_SHIPPED = ("math500", "aime24", "amc23")


def _logic_types() -> list[str]:
    from .logic import PUZZLES

    return sorted(PUZZLES)


def names() -> list[str]:
    return ["toy", *_MATH_SHIPPED, "math", "deepscaler", "logic", *(f"logic:{t}" for t in _logic_types())]


def get(name: str, **options: Any) -> Task:
    """The task called `name`; options go to its constructor (for example `path=` for `math`)."""
    if name == "toy":
        from .toy import ToyTask

        return ToyTask(**options)
    if name in _MATH_SHIPPED or name in ("math", "deepscaler"):
        from .math import MathTask

        return MathTask(name, **options)
    if name == "logic" or name.startswith("logic:"):
        from .logic import LogicTask

        kind = name.partition(":")[2] or None
        return LogicTask(kind, **options)
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(names())}")


def verifier(name: str):
    """Task `name`'s `verify(problem, answer_text)`, without loading its data.

    A problem carries only its task's name (`meta["task"]`); math problems loaded from a file (`math`,
    `deepscaler`) verify by equivalence with their own `answer`, so no file path is needed to score them.
    """
    if name in _MATH_SHIPPED or name in ("math", "deepscaler"):
        from .math import MathTask

        return MathTask("math500").verify
    return get(name).verify
