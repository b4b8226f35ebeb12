"""A study's toy-build stage: every `toy:` model its cells need that is not in the cache yet is built in a
subprocess of its own (`studykit.toy.build_child`, one torch thread) before the cells that use it start, so the
builds use the worker slots that would otherwise wait and the progress line can say what is being built.

`toy_builds(cells)` lists the builds a set of cells needs (one per distinct model name and recipe knobs);
`BuildRunner.run(build)` runs one (blocking, from a scheduler thread) and keeps its progress; `stop()` ends every
build it started (SIGINT, SIGTERM, SIGKILL, `grace` seconds apart). A build runs under `studykit.study.executors.child`
(parent-death signal), so it never outlives the study. A failed build is reported and its cells still run: the
kernel builds the model itself (under the same cache lock) and fails the cell with the real error if it fails
again. The output of each build goes to `<out_dir>/logs/build-<name>.log`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from studykit.infra.procs import descendants, signal_tree
from studykit.study.executors.local import CHILD_ENV, error_tail


@dataclass
class ToyBuild:
    """One toy model a study needs: its `toy:` name, recipe knobs and the label shown in progress."""

    model: str
    knobs: dict
    label: str
    done: int = 0
    total: int = 0
    started: float | None = None
    seconds: float = 0.0
    error: str | None = None
    cells: list[str] = field(default_factory=list)

    def rate(self) -> float | None:
        """Pretraining steps per second so far (None before the first step)."""
        if not self.started or self.done <= 0:
            return None
        return self.done / max(time.time() - self.started, 1e-6)


def toy_builds(cells) -> dict[str, ToyBuild]:
    """label -> ToyBuild for each distinct toy model (name + knobs) of `cells` that has no valid cache entry yet;
    each build lists the cells that wait for it. The label is the model name (`toy:strong`), with `#2`, `#3` ...
    when one name comes with several knob sets."""
    from studykit.toy.cache import is_built

    seen: dict[str, ToyBuild | None] = {}
    builds: dict[str, ToyBuild] = {}
    for cell in cells:
        model = cell.config.model
        if not model.name.startswith("toy:"):
            continue
        knobs = dict(model.toy or {})
        key = f"{model.name}|{json.dumps(knobs, sort_keys=True)}"
        if key not in seen:
            seen[key] = None
            if not is_built(model.name, **knobs):
                same = sum(b.model == model.name for b in builds.values())
                label = model.name if not same else f"{model.name}#{same + 1}"
                seen[key] = builds[label] = ToyBuild(model.name, knobs, label)
        if seen[key] is not None:
            seen[key].cells.append(cell.name)
    return builds


class BuildRunner:
    """Starts build subprocesses and remembers them, so `stop` can end them all."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.finished: list[ToyBuild] = []

    def run(self, build: ToyBuild) -> bool:
        """Build `build` (blocking); True when the model is in the cache afterwards."""
        # by label, not model: two knob sets of one model (`toy:custom`, `toy:custom#2`) build at once
        log = self.out_dir / "logs" / f"build-{build.label.removeprefix('toy:').replace('#', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()),
               "studykit.toy.build_child", build.model, json.dumps(build.knobs)]
        env = dict(os.environ, **CHILD_ENV)
        build.started = time.time()
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True,
                                    start_new_session=True)
            with self.lock:
                self.procs[build.label] = proc
            for line in proc.stdout:  # type: ignore[union-attr]
                parts = line.split()
                if len(parts) == 3 and parts[0] == "progress":
                    build.done, build.total = int(parts[1]), int(parts[2])
            rc = proc.wait()
            with self.lock:
                self.procs.pop(build.label, None)
        build.seconds = time.time() - build.started
        if rc != 0:
            build.error = error_tail(log) or f"build exited with {rc}"
        with self.lock:
            self.finished.append(build)
        return rc == 0

    def records(self) -> list[dict]:
        """One record per finished build (for `outputs/<study>/timing.json`)."""
        with self.lock:
            return [{"model": b.model, "knobs": b.knobs, "label": b.label, "seconds": round(b.seconds, 2),
                     "steps": b.total, "ok": b.error is None, "cells": len(b.cells)} for b in self.finished]

    def stop(self, grace: float = 10.0) -> None:
        with self.lock:
            procs = list(self.procs.values())
        trees = {p.pid: descendants(p.pid) for p in procs}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            live = [p for p in procs if p.poll() is None]
            for p in live:
                signal_tree(p.pid, trees[p.pid], sig)
            deadline = time.time() + grace
            while any(p.poll() is None for p in live) and time.time() < deadline:
                time.sleep(0.2)
