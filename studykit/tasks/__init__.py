"""Task registry: `get(name, **options)` returns a task object, `names()` lists what `get` accepts.

Names: `toy`; `math500`, `aime24`, `amc23` (shipped), `math` (any JSONL/JSON/parquet file: `path=`),
`deepscaler` (a local file via `path=`, or the hub when `hub=True` and online); `logic` (every puzzle
type mixed) and `logic:<type>` for one type (see `studykit.tasks.logic.PUZZLES`); `korbench:<category>` for
KOR-Bench's five categories (shipped; `studykit.tasks.korbench`); `rg:<name>` for the reasoning-gym generators
studykit has checked (`studykit.tasks.reasoning_gym.ENABLED`).
`splits(name)` and `pool_size(name, split)` answer from the registry, without building the task or reading data
(config validation uses them).

Plug-in tasks: a name that is an import path `package.module:Class`, or the bare name of an installed
distribution's `studykit.tasks` entry point (studykit.infra.plugins), names a user's task class. The class follows
`Task` (studykit.tasks.base) and declares, as class attributes, `name`, `template` and `splits` (a tuple of split
names), optionally `sizes` ({split: pool size}); `get(name, **task_options)` calls it with the options.

Layer 1 (beside `studykit.scoring`). May import: studykit.infra, studykit.scoring (verify: math equivalence, the
verifier worker).
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Problem, Task, share_diagnostics

__all__ = ["Problem", "Task", "get", "is_plugin", "names", "plugin", "pool_size", "share_diagnostics", "splits",
           "task_class", "verifier"]

_MATH_SHIPPED = ("math500", "aime24", "amc23")
_SHIPPED_PREFIXES = ("logic", "korbench", "rg")  # `logic:<type>` and the like are shipped names, not import paths
_TASK_MEMBERS = ("name", "template", "splits", "load", "generate", "verify")


def _logic_types() -> list[str]:
    from .logic import PUZZLES

    return sorted(PUZZLES)


def _korbench_names() -> list[str]:
    from .korbench import CATEGORIES

    return [f"korbench:{c}" for c in CATEGORIES]


def _rg_names() -> list[str]:
    from .reasoning_gym import ENABLED

    return [f"rg:{n}" for n in ENABLED]


def names() -> list[str]:
    return ["toy", *_MATH_SHIPPED, "math", "deepscaler", "logic", *(f"logic:{t}" for t in _logic_types()),
            *_korbench_names(), *_rg_names()]


def _family(name: str) -> str:
    if name == "toy":
        return "toy"
    if name in _MATH_SHIPPED or name in ("math", "deepscaler"):
        return "math"
    if name == "logic" or (name.startswith("logic:") and name in names()):
        return "logic"
    if name in _korbench_names():
        return "korbench"
    if name in _rg_names():
        return "rg"
    if is_plugin(name):
        return "plugin"
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(names())}")


def splits(name: str) -> tuple[str, ...]:
    """The splits `get(name).load` accepts (each family declares its own `splits`); KeyError for an unknown name."""
    family = _family(name)
    if family == "toy":
        from .toy import ToyTask

        return ToyTask.splits
    if family == "math":
        from .math import splits_of

        return splits_of(name)
    if family == "plugin":
        return tuple(plugin(name).obj.splits)
    return task_class(name)[0].splits


def pool_size(name: str, split: str) -> int | None:
    """How many problems `get(name).load(split)` returns, when known without a user's file (None otherwise)."""
    family = _family(name)
    if family == "toy":
        from .toy import ToyTask

        return ToyTask.sizes.get(split)
    if family in ("logic", "korbench", "rg", "plugin"):
        return getattr(task_class(name)[0], "sizes", {}).get(split)
    if name in _MATH_SHIPPED and split in splits(name):
        from .math import shipped_size

        return shipped_size(name)
    return None


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
    if _family(name) in ("korbench", "rg"):
        cls, _ = task_class(name)
        return cls(name.partition(":")[2], **options)
    if _family(name) == "plugin":
        return _build_plugin(name, options)
    raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(names())}")


def task_class(name: str):
    """The class `get(name)` builds and how many leading arguments the registry fills itself (config validation
    checks a params file's `task_options` against the rest)."""
    family = _family(name)
    if family == "toy":
        from .toy import ToyTask

        return ToyTask, 0
    if family == "logic":
        from .logic import LogicTask

        return LogicTask, 1
    if family == "korbench":
        from .korbench import KorBenchTask

        return KorBenchTask, 1
    if family == "rg":
        from .reasoning_gym import ReasoningGymTask

        return ReasoningGymTask, 1
    if family == "plugin":
        return plugin(name).obj, 0
    from .math import MathTask

    return MathTask, 1


def verifier(name: str):
    """Task `name`'s `verify(problem, answer_text)`, without loading its data.

    A problem carries only its task's name (`meta["task"]`); math problems loaded from a file (`math`,
    `deepscaler`) verify by equivalence with their own `answer`, so no file path is needed to score them.
    """
    if name in _MATH_SHIPPED or name in ("math", "deepscaler"):
        from .math import MathTask

        return MathTask("math500").verify
    return get(name).verify


def is_plugin(name: str) -> bool:
    """`name` is not shipped but an import path, or an installed `studykit.tasks` entry point's name."""
    from studykit.infra.plugins import entry_point_names, is_path

    if name in names():
        return False
    if is_path(name):
        return name.partition(":")[0] not in _SHIPPED_PREFIXES
    return name in entry_point_names("task")


def plugin(name: str):
    """The plug-in task class `name` names (studykit.infra.plugins.Plugin), checked against the interface."""
    from studykit.infra.plugins import PluginError, lookup

    found = lookup("task", name, names())
    cls, expected = found.obj, ("a class following studykit.tasks.Task: class attributes name, template and splits "
                                "(a tuple), methods load(split), generate(n, seed, difficulty), verify(problem, "
                                "answer_text)")
    if not isinstance(cls, type):
        raise PluginError(f"{found} is {type(cls).__name__} {cls!r}; expected {expected}")
    missing = [m for m in _TASK_MEMBERS if not hasattr(cls, m)]
    if missing:
        raise PluginError(f"{found} ({cls.__name__}) lacks {', '.join(missing)}; expected {expected}")
    splits_ = cls.splits
    if isinstance(splits_, str) or not splits_ or not all(isinstance(s, str) for s in splits_):
        raise PluginError(f"{found}: splits is {splits_!r}; expected a non-empty tuple of split names")
    for method, args in (("load", 1), ("verify", 2)):
        try:
            inspect.signature(getattr(cls, method)).bind(None, *([None] * args))
        except (TypeError, ValueError):
            raise PluginError(f"{found}: {method} has signature {inspect.signature(getattr(cls, method))}; "
                              f"expected {expected}") from None
    return found


def _build_plugin(name: str, options: dict[str, Any]) -> Task:
    from studykit.infra.plugins import PluginError

    found = plugin(name)
    try:
        task = found.obj(**options)
    except Exception as err:  # noqa: BLE001 - the user's constructor
        raise PluginError(f"{found}: {found.obj.__name__}(**{options!r}) raised {type(err).__name__}: {err}") from err
    return task
