"""Where cells run, behind one small interface (DESIGN.md: `local`, the default; `ray` is planned).

An `Executor` runs one notebook per `run` call (blocking; the study runner calls it from several threads at once)
and stops everything it started on `stop`. Guarantees of every executor: the executed notebook is written to the
given path as it runs, the cell's output goes to `<out_dir>/logs/<key>.log`, and no process it started outlives
the study process, whatever signal ends that (see `studykit.executors.local` for how).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Executor(Protocol):
    def run(self, key: str, notebook: Path, params: dict[str, Any], out_nb: Path) -> tuple[int, str]:
        """Execute `notebook` with `params` into `out_nb`; returns (exit code, the log's error tail)."""

    def stop(self, grace: float = 10.0) -> None:
        """Interrupt every running cell (then terminate, then kill, `grace` seconds apart)."""


def make(name: str, out_dir: Path, uri: str) -> Executor:
    if name == "local":
        from .local import LocalExecutor

        return LocalExecutor(out_dir, uri)
    raise ValueError(f"unknown executor {name!r} (known: local)")
