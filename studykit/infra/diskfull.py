"""Disk full, told in one line: which path could not be written, and what to do.

`full_path(err, uri)` looks through an exception and its causes for a write that failed for lack of space: an
OSError with ENOSPC or EDQUOT (its path as the OS reported it) or SQLite's "database or disk is full" (the sqlite
file of `uri`; SQLAlchemy and MLflow wrap that one). `DiskFull` carries the one-line message the study prints and
writes as its parent run's reason. The store stays intact through such a failure (SQLite rolls the write back,
artifacts are copied whole or not at all), so the same command rerun after freeing space goes on from what finished.
"""

from __future__ import annotations

import errno

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = "database or disk is full"


class DiskFull(OSError):
    """A study stopped because a disk is full; str() is the one line to show."""


def full_path(err: BaseException, uri: str | None = None) -> str | None:
    """The path a disk-full failure in `err` (or its causes) could not write; None when `err` is not one."""
    seen: set[int] = set()
    e: BaseException | None = err
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return str(e.filename or e.filename2 or "(the OS did not say which path)")
        if SQLITE_FULL in str(e):
            return uri[len("sqlite:///"):] if uri and uri.startswith("sqlite:///") else (uri or "the tracking store")
        e = e.__cause__ or e.__context__
    return None


def message(path: str) -> str:
    return (f"disk full: no space left to write {path}; free space there and run the same command again "
            "(what finished is kept)")
