"""Processes: who owns a run (host, pid, start time), whether that owner is still alive, and the Linux
parent-death signal that ties a child's life to its parent's.

Guarantees: `alive(pid, start)` is False for a pid that is gone, a zombie, or reused by a process that started
at another time (the start time is the kernel's, in clock ticks since boot, from /proc); on a system without
/proc only the pid is checked. `die_with_parent()` makes the calling process receive SIGKILL when the thread
that forked it ends (Linux `prctl(PR_SET_PDEATHSIG)`; a no-op elsewhere) and exits at once when that parent is
already gone. `descendants` and `signal_tree` reach a process tree across sessions (psutil). `free_port` and
`answers` start and wait for a local server (the UI, the tracking server, their tests); `port_taken` says whether
a server could bind its port. `watchdog(pid)` starts a guard that stops `pid`'s whole tree once the calling
process is gone, however it ended (kill -9 included): the parent-death signal reaches only a direct child, not the
server processes a child starts (`python -m studykit.infra.procs watch PID`). No studykit imports: everything above may
use it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import socket
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def hostname() -> str:
    return socket.gethostname()


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot) as a string, or None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` runs (and, when `start` is given and /proc is readable, started at `start`)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _zombie(pid):
        return False
    now = start_time(pid)
    return not (start and now and now != start)


def die_with_parent(parent: int | None = None, sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent (thread) dies; exit now if `parent` (the pid the
    caller expects as parent) is already gone, since the request only covers deaths after it is made."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if parent and os.getppid() != parent:
        os._exit(1)


def descendants(pid: int) -> list:
    """psutil.Process objects of every descendant of `pid` (those in other sessions too), [] when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def signal_tree(pid: int, children: list, sig: int) -> None:
    """`sig` to the process group led by `pid` and to each of `children` (a kernel or server worker may have left
    the group)."""
    import psutil

    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:
        try:
            child.send_signal(sig)
        except psutil.Error:
            pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (the OS picks it; another process may still take it before it is bound)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def answers(url: str, timeout_s: float = 5.0) -> bool:
    """Whether a GET of `url` returns HTTP 200 (False on any connection error or timeout)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except OSError:
        return False


def port_taken(host: str, port: int) -> str | None:
    """Why a server could not bind `host`:`port` now (None: it could), tried as uvicorn binds (SO_REUSEADDR)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        return f"cannot resolve {host!r}: {err}"
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"{host}:{port} is already in use (another server?); choose another --port"
            return f"cannot bind {host}:{port}: {err.strerror or err}"
    return None


WATCH_GRACE_S = 5.0


def watchdog(pid: int) -> subprocess.Popen:
    """A guard process (own session, so a signal to this process's group spares it) that stops `pid`'s tree when
    the caller's end of its stdin closes: at the caller's exit, however it ends. Close its stdin after stopping
    the tree yourself; it then finds nothing left and exits."""
    return subprocess.Popen([sys.executable, "-m", "studykit.infra.procs", "watch", str(pid)], stdin=subprocess.PIPE,
                            start_new_session=True)


def _watch(pid: int, grace: float = WATCH_GRACE_S) -> None:
    """The guard's loop: remember `pid`'s descendants every half second (a server's workers outlive it, reparented,
    when it is SIGKILLed) until stdin reaches EOF, then SIGTERM the group and all of them, SIGKILL after `grace`."""
    import psutil

    tree: dict[int, psutil.Process] = {}
    while True:
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], 0.5)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
        tree |= {p.pid: p for p in descendants(pid) if p.pid not in tree}
    procs = [p for p in tree.values() if p.is_running()]  # psutil checks the start time: a reused pid is not ours
    signal_tree(pid, procs, signal.SIGTERM)
    _, left = psutil.wait_procs(procs, timeout=grace)
    signal_tree(pid, left, signal.SIGKILL)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "watch" or not sys.argv[2].isdigit():
        raise SystemExit("usage: python -m studykit.infra.procs watch PID")
    _watch(int(sys.argv[2]))
