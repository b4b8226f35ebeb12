"""A study's progress line: what runs now, what is done, and an ETA from measured cell times.

One line, e.g.

    [toy] 14/87 cells (done 12, skipped 2, failed 0) | now: build toy:weak-skill 640/1500 (2.1 steps/s),
    ground_truth-strong-toy-s1 31s | ETA 11m20s

`StudyProgress` is fed by the scheduler (`start`, `finish`, and `tick` once a second) and holds the builds of
`studykit.study.executors.builds` (their step counts come from the build processes). The ETA is the work left, divided by
the worker slots: each pending cell costs the mean measured time of the cells done so far in this invocation (skipped
cells cost nothing and do not count), a running cell costs that mean less its elapsed time, a running build its
steps left at its measured rate, a pending build the mean build time (or, before any finished, the rate of the
running ones). Before a cell has finished the ETA says so instead of guessing.

On a terminal the line is a tqdm bar redrawn every second; elsewhere (a log file, a test) a plain line is printed
whenever a cell or build starts or ends, and every `every` seconds in between, so nothing sits silent for minutes.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

STATUSES = ("done", "skipped", "failed", "interrupted")


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class StudyProgress:
    """Thread-safe state of one study invocation, rendered as one line (see the module docstring)."""

    def __init__(self, study: str, cells: int, workers: int, builds: dict | None = None, enabled: bool = True,
                 stream: TextIO | None = None, every: float = 30.0, skipped: int = 0):
        self.study, self.total, self.workers = study, cells + skipped, max(1, workers)
        self.builds = builds or {}
        self.enabled, self.every = enabled, every
        self.stream = stream if stream is not None else sys.stderr
        self.counts = {s: 0 for s in STATUSES}
        self.counts["skipped"] = skipped
        self.cell_seconds: list[float] = []
        self.running: dict[str, float] = {}
        self.lock = threading.Lock()
        self.last = 0.0
        self.printed = ""
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=skipped, desc=f"[{study}]", file=self.stream,
                            bar_format="{desc}: {n_fmt}/{total_fmt} |{bar:12}| {postfix}", dynamic_ncols=True)

    # events from the scheduler ------------------------------------------------------------------------------
    def start(self, name: str) -> None:
        with self.lock:
            self.running[name] = time.time()
        self._show(force=True)

    def finish(self, name: str, status: str | None = None, seconds: float = 0.0) -> None:
        """A cell (status given) or a build (status None) ended."""
        with self.lock:
            self.running.pop(name, None)
            if status is not None:
                self.counts[status if status in self.counts else "failed"] += 1
                if status == "done":
                    self.cell_seconds.append(seconds)
                if self.bar is not None:
                    self.bar.update(1)
        self._show(force=True)

    def tick(self) -> None:
        self._show(force=False)

    def close(self) -> None:
        self._show(force=True)
        if self.bar is not None:
            self.bar.close()

    # rendering ----------------------------------------------------------------------------------------------
    def line(self) -> str:
        with self.lock:
            finished = sum(self.counts.values())
            counts = ", ".join(f"{s} {self.counts[s]}" for s in STATUSES if s != "interrupted" or self.counts[s])
            head = f"[{self.study}] {finished}/{self.total} cells ({counts})"  # not "study X:", the summary's start
            now = [self._describe(name, since) for name, since in self.running.items()]
            eta = self._eta(finished)
        return f"{head} | now: {', '.join(now) if now else 'nothing'} | {eta}"

    def _describe(self, name: str, since: float) -> str:
        build = self.builds.get(name)
        if build is None:
            return f"{name} {_clock(time.time() - since)}"
        if not build.total:
            return f"build {name} (starting, {_clock(time.time() - since)})"
        rate = build.rate()
        return f"build {name} {build.done}/{build.total}" + (f" ({rate:.1f} steps/s)" if rate else "")

    def _eta(self, finished: int) -> str:
        now = time.time()
        work = 0.0
        measured = [b.seconds for b in self.builds.values() if b.seconds and not b.error]
        measured += [b.total / b.rate() for b in self.builds.values() if b.label in self.running and b.rate()]
        for b in self.builds.values():
            if b.label in self.running and b.rate():
                work += (b.total - b.done) / b.rate()
            elif b.label in self.running or not b.seconds:  # starting, or not started yet
                if not measured:
                    return "ETA: after a build has measured its speed"
                work += sum(measured) / len(measured)
        cells_running = [t for n, t in self.running.items() if n not in self.builds]
        pending = self.total - finished - len(cells_running)
        if pending + len(cells_running) == 0:
            return f"ETA {_clock(work / self.workers)}" if work else "ETA 0s"
        if not self.cell_seconds:
            return "ETA: after the first cell finishes"
        mean = sum(self.cell_seconds) / len(self.cell_seconds)
        work += pending * mean + sum(max(mean - (now - t), 0.0) for t in cells_running)
        return f"ETA {_clock(work / self.workers)} (mean cell {_clock(mean)})"

    def _show(self, force: bool) -> None:
        if not self.enabled:
            return
        now = time.time()
        if self.bar is not None:
            if force or now - self.last >= 1.0:
                self.last = now
                text = self.line()
                self.bar.set_postfix_str(text.split(" | ", 1)[1] if " | " in text else text, refresh=True)
            return
        if force or now - self.last >= self.every:
            text = self.line()
            if text != self.printed or now - self.last >= self.every:  # an event that changed nothing: no line
                self.last, self.printed = now, text
                print(text, file=self.stream, flush=True)
