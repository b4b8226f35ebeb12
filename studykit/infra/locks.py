"""Exclusive inter-process file locks (POSIX fcntl), shared by the toy cache, the MLflow store setup and the cell
claims of the study runner.

`file_lock` blocks until it holds the lock. `polling_lock` tries every `poll` seconds, so a waiter can give up when
`cancelled()` turns true (a study being interrupted), and writes its holder (`note`) into the file for whoever waits.
Either lock is released when its holder exits, however it exits (the kernel drops flock locks of a dead process);
locks are not re-entrant (a second lock of the same file in the same process waits for the first).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def polling_lock(path: Path, cancelled: Callable[[], bool] = lambda: False, poll: float = 0.5, note: str = "",
                 on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Yield True holding the lock on `path`, or False when `cancelled()` turned true while waiting for it.
    `on_wait(holder note)` is called once when the lock is found taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        warned = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancelled():
                    yield False
                    return
                if on_wait is not None and not warned:
                    handle.seek(0)
                    on_wait(handle.read().strip())
                    warned = True
                time.sleep(poll)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(note)
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
