"""Math equivalence for verifiable rewards; answer extraction and the format check (studykit.scoring.answers) are
re-exported here, so `studykit.scoring.verify.extract_answer` / `format_ok` / `math_equal` are the names to use.

* `extract_answer(text)`: the first `<answer>...</answer>` block (multi-line), else the last `\\boxed{...}`
  (nested braces counted, `\\boxed 5` accepted), else None. Texts longer than `MAX_TEXT_CHARS` are cut to
  their last `MAX_TEXT_CHARS` characters first (answers come at the end), so hostile input stays cheap.
* `format_ok(text)`: `<think>...</think>` then `<answer>...</answer>`, newlines allowed anywhere inside.
* `math_equal(pred, gold)`: a normalised-string fast path, then `math_verify` (LaTeX extraction only, so
  no `sympy.parse_expr`/`eval` ever sees model output) under a wall-clock deadline, with an LRU cache.

Departures from the paper's released code (deliberate, they are faults there): its format regex lacked
DOTALL so every multi-line reasoning failed the check; its math correctness was exact string equality.

Deadline mechanism (measured on this machine, `10^{10^{10^{10}}}` against `5`):
math-verify's own timeout is `signal.alarm`, integer seconds, per parse/compare step, and raises in any
thread but the main one. In the main thread we arm one `signal.setitimer` deadline around the whole check
(float seconds; it interrupts sympy's big-integer loops too, which check for signals): 2.0 s.
Signals cannot reach other threads, and an async exception (`PyThreadState_SetAsyncExc`) does not interrupt
those C loops (measured: it hung), so calls from other threads go to a small pool of worker processes that
run the same main-thread check; the caller waits `timeout_s + 0.3 s` and kills a worker that has not
answered. A worker's start (about 1 s, once per worker) is not counted in the deadline; call
`warm_up()` beforehand to pay it early. POSIX only (signals, `select` on pipes).

Budgets: `Budget(seconds)` bounds the wall time of all the math checks made inside `budget.applied()` blocks,
in any number of threads (`studykit score` runs one per verifier worker and gives each file one budget). Inside a
block each check's time limit is cut to what is left, a check after the budget is spent is not made (False), and
the block's `Tally` counts both kinds, so a caller can REPORT answers that were never decided instead of silently
scoring them wrong.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
import time
from contextlib import contextmanager
from functools import lru_cache

from studykit.scoring.answers import (  # noqa: F401 (extract_answer, format_ok: public here too)
    MAX_ANSWER_CHARS, MAX_TEXT_CHARS, _braces_balanced, _normalise, _strip_dollars, _unbox, extract_answer, format_ok,
)

__all__ = ["extract_answer", "format_ok", "math_equal", "warm_up", "shutdown_workers", "MAX_TEXT_CHARS", "Budget",
           "Tally", "pool_size"]

log = logging.getLogger(__name__)

_GRACE_S = 0.3  # extra wait before a silent worker process is killed
_WORKER_START_S = 60.0

# ----------------------------------------------------------------------------- math-verify under a deadline


class _Deadline(BaseException):
    """Raised by our SIGALRM handler; a BaseException so math-verify's `except Exception` lets it through."""


class _QuietTimeoutWarning(logging.Filter):  # we pass timeout=None on purpose: our deadline is outside
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_QuietTimeoutWarning())


@contextmanager
def _signal_deadline(seconds: float):
    """Raise `_Deadline` in the main thread after `seconds`; restores any timer the caller had armed."""

    def _raise(signum, frame):
        raise _Deadline()

    old_handler = signal.signal(signal.SIGALRM, _raise)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            left = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def _mv_parse(latex: str) -> list:
    from math_verify import LatexExtractionConfig, parse

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    return parse(latex, extraction_config=config, parsing_timeout=None)


def _mv_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict, no deadline. Gold and a plain prediction are wrapped in `\\boxed{}`; a
    prediction that mixes text and `$...$` math is also tried as is (math-verify finds the math).
    `allow_set_relation_comp` lets `1 \\le x \\le 2` match the gold `[1,2]`."""
    from math_verify import verify

    gold_parsed = _mv_parse("\\boxed{" + _unbox(gold) + "}")
    if not gold_parsed:
        return False
    core = _unbox(pred)
    candidates = ["\\boxed{" + core + "}"] + ([core] if "$" in core else [])
    return any(
        verify(gold_parsed, _mv_parse(text), timeout_seconds=None, allow_set_relation_comp=True)
        for text in candidates
    )


@lru_cache(maxsize=1)
def _load_math_verify() -> None:
    """Import math-verify and build its LaTeX parser once, outside any deadline (about 1 s, measured):
    a deadline must never fire inside an import."""
    _mv_parse("\\boxed{\\frac{1}{2}}")


class _Undecided(Exception):
    """The check ran out of time: no verdict. Raised through the cache, so it is never remembered as "wrong"."""


def _check_here(pred: str, gold: str, timeout_s: float) -> bool | None:
    """The math-verify check in the main thread under a signal deadline; None when the deadline hit."""
    try:
        _load_math_verify()
        with _signal_deadline(timeout_s):
            return _mv_equal(pred, gold)
    except _Deadline:
        log.debug("math_equal hit its %.1f s deadline", timeout_s)
        return None
    except Exception:  # malformed input of any kind is simply not equal
        log.debug("math_equal failed", exc_info=True)
        return False


class JsonLineWorker:
    """A `python -m <module> --serve` child answering one JSON line per request line on stdin/stdout; a reply
    that does not come in time is None (the caller then kills the child). Shared by the verifier's workers and
    reasoning-gym's scorer process (studykit.tasks.reasoning_gym)."""

    module = "studykit.scoring.verify"
    start_s = _WORKER_START_S

    def __init__(self, **env_extra: str) -> None:
        pkg_root = str(Path(__file__).resolve().parents[2])  # the folder that holds the studykit package
        env = dict(os.environ, OMP_NUM_THREADS="1", **env_extra)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
        cmd = [sys.executable, "-m", self.module, "--serve"]
        pipe = subprocess.PIPE
        self.proc = subprocess.Popen(cmd, stdin=pipe, stdout=pipe, stderr=subprocess.DEVNULL, env=env)
        self._buf = b""
        if self._read_line(self.start_s) != {"ready": True}:
            self.kill()
            raise RuntimeError(f"{self.module} worker process did not start")

    def _read_line(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def request(self, req: dict, timeout: float) -> dict | None:
        """Send `req`; the reply, or None when none came within `timeout` (or the pipe broke)."""
        try:
            self.proc.stdin.write(json.dumps(req).encode() + b"\n")
            self.proc.stdin.flush()
            return self._read_line(timeout)
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class _Worker(JsonLineWorker):
    """One `python -m studykit.scoring.verify` process answering math_equal requests."""

    def ask(self, pred: str, gold: str, timeout_s: float) -> bool | None | str:
        """The worker's verdict (None: its own deadline hit), or "silent" if it did not answer in time (the
        caller then kills it)."""
        reply = self.request({"p": pred, "g": gold, "t": timeout_s}, timeout_s + _GRACE_S)
        return "silent" if reply is None else reply.get("r")


class _Pool:
    """Idle workers, at most `size` alive; a caller takes one, asks, and gives it back (or kills it)."""

    def __init__(self, size: int) -> None:
        self.size, self.alive, self.idle = size, 0, []
        self.cond = threading.Condition()

    def _take(self) -> _Worker:
        with self.cond:
            while not self.idle and self.alive >= self.size:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.alive += 1
        try:
            return _Worker()
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        with self.cond:
            self.alive -= 1
            self.cond.notify()

    def check(self, pred: str, gold: str, timeout_s: float) -> bool | None:
        """The verdict, or None when the check ran out of time (in the worker, or the worker went silent)."""
        worker = self._take()
        verdict = worker.ask(pred, gold, timeout_s)
        if verdict == "silent":
            worker.kill()
            self._drop()
            return None
        with self.cond:
            self.idle.append(worker)
            self.cond.notify()
        return verdict

    def warm(self, n: int) -> None:
        workers = [self._take() for _ in range(min(n, self.size))]
        with self.cond:
            self.idle.extend(workers)
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.alive -= len(idle)
        for w in idle:
            w.kill()


def pool_size() -> int:
    """How many verifier worker processes may run at once ($STUDYKIT_VERIFY_WORKERS, default min(4, CPUs))."""
    return _POOL.size


def _pool_size() -> int:
    raw = os.environ.get("STUDYKIT_VERIFY_WORKERS", str(min(4, os.cpu_count() or 1)))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"STUDYKIT_VERIFY_WORKERS must be a positive integer, got {raw!r}")
    return int(raw)


_POOL = _Pool(_pool_size())
atexit.register(_POOL.close)


def warm_up(workers: int = 1) -> None:
    """Start worker processes now, so the first `math_equal` from a non-main thread does not pay for it."""
    _POOL.warm(workers)


def shutdown_workers() -> None:
    """Stop the idle worker processes (they also stop when this process exits)."""
    _POOL.close()


@lru_cache(maxsize=65536)
def _math_equal_cached(pred: str, gold: str, timeout_s: float) -> bool:
    """Cached verdicts only: a check without one raises `_Undecided`, which lru_cache does not store, so an
    answer that timed out under load is checked again next time instead of staying wrong for the process."""
    if _normalise(pred) == _normalise(gold):
        return True
    if threading.current_thread() is threading.main_thread():
        verdict = _check_here(pred, gold, timeout_s)
    else:
        try:
            verdict = _POOL.check(pred, gold, timeout_s)
        except Exception:
            log.warning("math_equal: no verifier worker process; counting the answer as wrong", exc_info=True)
            raise _Undecided() from None
    if verdict is None:
        raise _Undecided()
    return bool(verdict)


class Tally:
    """What the checks of one `Budget.applied()` block could not decide."""

    def __init__(self) -> None:
        self.timed_out = 0  # ran out of their own time limit (or of what the budget had left)
        self.skipped = 0  # not made at all: the budget was spent

    @property
    def undecided(self) -> int:
        return self.timed_out + self.skipped


class Budget:
    """A wall-clock budget shared by the math checks made inside `applied()` blocks (module docstring)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.deadline = time.monotonic() + self.seconds
        self.lock = threading.Lock()
        self.timed_out = self.skipped = 0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def spent(self) -> bool:
        return self.skipped > 0 or self.left() <= 0

    @contextmanager
    def applied(self):
        """Count this thread's checks against the budget for the block; yields the block's Tally."""
        tally, previous = Tally(), getattr(_LOCAL, "budget", None)
        _LOCAL.budget = (self, tally)
        try:
            yield tally
        finally:
            _LOCAL.budget = previous
            with self.lock:
                self.timed_out += tally.timed_out
                self.skipped += tally.skipped


_LOCAL = threading.local()
_MIN_CHECK_S = 0.05  # less time left than this: the check is not started


def _budgeted(pred: str, gold: str, timeout_s: float) -> bool:
    """The cached check under this thread's budget, if any; an undecided check is counted there and is False."""
    budget, tally = getattr(_LOCAL, "budget", None) or (None, None)
    if budget is not None:
        left = budget.left()
        if left < _MIN_CHECK_S:
            tally.skipped += 1
            return False
        timeout_s = min(timeout_s, left)
    try:
        return _math_equal_cached(pred, gold, timeout_s)
    except _Undecided:
        if tally is not None:
            tally.timed_out += 1
        return False


def math_equal(pred: str | None, gold: str, timeout_s: float = 2.0) -> bool:
    """Whether the predicted answer `pred` equals the reference `gold` (a LaTeX string, e.g. from MATH-500).

    Never raises: None, non-strings, empty, over-long (`MAX_ANSWER_CHARS`) or brace-unbalanced predictions,
    malformed LaTeX and checks that exceed `timeout_s` seconds of wall time are all False. Results are
    cached per (pred, gold, timeout_s), except checks that ran out of time (False now, checked again next
    call). The order matters to math-verify (gold is the reference), as it does here. Inside a `Budget.applied()`
    block the time limit is cut to what the budget has left, and undecided checks are counted (module docstring).
    """
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    if not pred.strip() or not gold.strip() or len(pred) > MAX_ANSWER_CHARS or not _braces_balanced(pred):
        return False
    if _normalise(pred) == _normalise(gold):
        return True
    return _budgeted(pred, gold, float(timeout_s))


def _serve() -> None:
    """Loop of a worker process: one JSON request per stdin line, one JSON verdict per stdout line."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies may reach the pipe
    _load_math_verify()  # pay the import before saying ready
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        req = json.loads(line)
        verdict = _check_here(req["p"], req["g"], float(req["t"]))
        out.write(json.dumps({"r": verdict}).encode() + b"\n")
        out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
