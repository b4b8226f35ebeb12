"""`studykit ui`: the MLflow UI on the study store, for one local user, that stops completely.

`serve(uri, host, port)` opens the store first (its tables are created or upgraded under the store lock, as every
studykit process does), then runs `mlflow ui --workers 1` in a process group of its own, with MLflow's job runner
off (`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` unless set: it is for server-side jobs, not for browsing runs). On
SIGINT, SIGTERM or SIGHUP the whole tree stops: SIGTERM to the group and to every descendant found before it (a
process that left the group included), then SIGKILL after `GRACE_S`. The server also dies if this process is
SIGKILLed (parent-death signal; its own workers then get no signal from us). The default host is 127.0.0.1; any
address that is not loopback prints a warning, since the MLflow UI has no login.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading

from . import procs

GRACE_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command(uri: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "studykit.executors.child", "--parent", str(os.getpid()), "mlflow", "ui",
            "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def stop(proc: subprocess.Popen, grace: float = GRACE_S) -> None:
    """Stop the server's process tree: SIGTERM, then SIGKILL to what is left after `grace` seconds."""
    tree = procs.descendants(proc.pid)
    procs.signal_tree(proc.pid, tree, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    import psutil

    _, alive = psutil.wait_procs(tree, timeout=max(0.1, grace / 2))
    procs.signal_tree(proc.pid, alive, signal.SIGKILL)
    proc.wait()


def serve(uri: str, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the UI until it exits or a stop signal arrives; returns its exit code (0 when stopped by a signal)."""
    from .tracking import client

    client(uri)
    if not is_loopback(host):
        print(f"warning: serving the MLflow UI on {host}: anyone who can reach this address can read and change "
              "the store (no login); prefer 127.0.0.1 and an SSH tunnel", file=sys.stderr)
    cmd = command(uri, host, port)
    print("running:", " ".join(cmd[5:]))
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    asked = threading.Event()
    old = {sig: signal.signal(sig, lambda signum, frame: asked.set()) for sig in STOP_SIGNALS}
    try:
        while proc.poll() is None and not asked.wait(0.5):
            pass
    finally:
        stop(proc)
        for sig, previous in old.items():
            signal.signal(sig, previous)
    return 0 if asked.is_set() else proc.returncode
