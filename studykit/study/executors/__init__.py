"""Where cells run, behind one small interface (DESIGN.md: `local`, the default; `ray`, one Ray task per cell).

An `Executor` runs one notebook per `run` call (blocking; the study runner calls it from several threads at once)
and stops everything it started on `stop`. Guarantees of every executor: the executed notebook is written to the
given path as it runs, the cell's output goes to `<out_dir>/logs/<key>.log`, and no process it started outlives
the study process, whatever signal ends that (see `studykit.study.executors.local` for how).

Two optional attributes, read by the study runner with `getattr`: `on_driver`, the executor that runs the compare
step (an executor whose cells run elsewhere keeps the report on this machine), and `owner_state(tags)`, which judges
a run owned by a process on another host ("alive", "gone" or "unknown") where that host can be asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Executor(Protocol):
    def run(self, key: str, notebook: Path, params: dict[str, Any], out_nb: Path) -> tuple[int, str]:
        """Execute `notebook` with `params` into `out_nb`; returns (exit code, the log's error tail)."""

    def stop(self, grace: float = 10.0) -> None:
        """Interrupt every running cell (then terminate, then kill, `grace` seconds apart)."""


NAMES = ("local", "ray")


def make(name: str, out_dir: Path, uri: str, **options: Any) -> Executor:
    """The executor `name` (NAMES); `options` go to its constructor (ray: `address`, `resources`)."""
    if name == "local":
        from studykit.study.executors.local import LocalExecutor

        if options:
            raise ValueError(f"the local executor takes no options (got {sorted(options)}); they are for --executor ray")
        return LocalExecutor(out_dir, uri)
    if name == "ray":
        from studykit.study.executors.ray import RayExecutor

        return RayExecutor(out_dir, uri, **options)
    raise ValueError(f"unknown executor {name!r} (known: {', '.join(NAMES)})")
