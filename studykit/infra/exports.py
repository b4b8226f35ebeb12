"""Lazy public names for a layer's `__init__` (PEP 562): `from studykit.engine import train` imports
`studykit.engine.trainer` on first use only, so importing one module of a layer (verl's reward process imports
`studykit.integrations.verl`, a config check imports `studykit.config`) never loads the rest of it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`; `names` maps each public name to the submodule (relative to
    `package`) that defines it."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
