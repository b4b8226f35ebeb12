"""The study side of warm kernels (`studykit.study.executors.zygote`): start the zygote, send it cells, wait for their
exit codes, and know each cell process's pid so that `stop` can signal its tree.

`Zygote(env, log)` starts the zygote at once (it imports while the study checks its store and builds its toy
models); `run(...)` blocks until that cell's process exits and returns its exit code. If the zygote dies, every
cell it had not finished gets exit code -9 (its processes died with it: parent-death signal) and `usable` turns
False, so the executor falls back to plain papermill subprocesses. `close()` ends the zygote (end of its stdin;
SIGKILL after a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

READY_TIMEOUT = 600.0
"""Seconds the first cell waits for the zygote's imports (minutes on a loaded 2-core machine)."""


class Zygote:
    def __init__(self, env: dict[str, str], log: Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.pids: dict[str, int] = {}
        self.rcs: dict[str, int] = {}
        self.events: dict[str, threading.Event] = {}
        self.missing: list[str] = []
        self.alive = True
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()),
                 "studykit.study.executors.zygote"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                start_new_session=True)
        threading.Thread(target=self._read, daemon=True, name="studykit-zygote").start()

    @property
    def usable(self) -> bool:
        return self.alive

    def _read(self) -> None:
        try:
            for raw in self.proc.stdout:  # type: ignore[union-attr]
                try:
                    msg = json.loads(raw)
                except ValueError:  # a preloaded library printed to stdout: not a protocol line
                    continue
                if isinstance(msg, dict):
                    self._handle(msg)
            self.proc.wait()
        finally:  # however the reader ends, no cell waits for a zygote that can no longer answer
            with self.lock:
                self.alive = False
                for key, event in self.events.items():
                    self.rcs.setdefault(key, -9)
                    event.set()
            self.ready.set()

    def _handle(self, msg: dict) -> None:
        with self.lock:
            if "ready" in msg:
                self.missing = msg["ready"]
                self.ready.set()
            elif "pid" in msg:
                self.pids[msg["id"]] = msg["pid"]
            elif "rc" in msg:
                self.rcs[msg["id"]] = msg["rc"]
                self.pids.pop(msg["id"], None)
                self.events[msg["id"]].set()

    def run(self, key: str, notebook: Path, out_nb: Path, params_file: Path, log: Path) -> int | None:
        """Execute one cell in a forked process; its exit code (-9 when the zygote died under it), or None when the
        zygote never got ready (nothing was started: the caller runs the cell another way)."""
        if not self.ready.wait(READY_TIMEOUT):
            self.alive = False  # never ready: later cells go the plain way at once instead of waiting again
            return None
        if not self.alive:
            return None
        req = {"id": key, "notebook": str(notebook), "out": str(out_nb), "params": str(params_file),
               "cwd": str(Path.cwd()), "log": str(log.resolve())}
        with self.lock:
            if not self.alive:
                return None
            event = self.events[key] = threading.Event()
            self.rcs.pop(key, None)
            self.proc.stdin.write((json.dumps(req) + "\n").encode())  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        event.wait()
        with self.lock:
            self.events.pop(key, None)
            return self.rcs.pop(key)

    def running_pids(self) -> list[int]:
        with self.lock:
            return list(self.pids.values())

    def close(self, grace: float = 5.0) -> None:
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
