"""`studykit ui`: the MLflow UI on the study store, for one local user, that stops completely.

`serve(uri, host, port, workers=1, jobs=False)` opens the store first (its tables are created or upgraded under the
store lock, as every studykit process does), then runs `mlflow ui --workers 1` in a process group of its own, with
MLflow's job runner (a huey consumer and its worker processes, for server-side jobs, not for browsing runs) off:
`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false` unless `jobs` (`studykit ui --jobs`) or the variable is set. One web
worker for one local user starts in seconds where MLflow's defaults start several (`bench/ui_start.py`). On
SIGINT, SIGTERM or SIGHUP the whole tree stops: SIGTERM to the group and to every descendant found before it (a
process that left the group included), then SIGKILL after `GRACE_S`. The server also dies if this process is
SIGKILLed: the parent-death signal ends the child, and a guard process (`procs.watchdog`) the rest of its tree,
uvicorn included. A port already in use is refused before anything starts, and a server that ends by itself (not
stopped by a signal) exits non-zero, even when MLflow's exit code is 0. The default host is 127.0.0.1; any
address that is not loopback prints a warning, since the MLflow UI has no login.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading

from studykit.infra import procs

GRACE_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def command(uri: str, host: str, port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "studykit.study.executors.child", "--parent", str(os.getpid()), "mlflow", "ui",
            "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", str(workers)]


def server_env(jobs: bool = False) -> dict[str, str]:
    """The server's environment: MLflow's job runner off unless asked for (`jobs`, or the variable already set)."""
    env = dict(os.environ)
    if jobs:
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "true"
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def links(uri: str, host: str, port: int, limit: int = 8) -> str:
    """Where each study's runs are: MLflow 3.17 opens an experiment on its GenAI overview unless the browser's
    "Model training" switch is on; `workflowType=machine_learning` in the link turns it on (studykit.tracking.uicheck)."""
    from studykit.tracking.experiment import client
    from studykit.tracking.uicheck import runs_url

    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    exps = [e for e in client(uri).search_experiments(max_results=limit + 1) if e.name != "Default"]
    lines = [f"  {e.name}: {runs_url(f'http://{shown}:{port}', e.experiment_id)}" for e in exps[:limit]]
    return "\n".join(["the studies' runs (each study's cells nested under its `study <name>` run):", *lines]
                     if lines else ["no study in this store yet"])


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


def serve(uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1, jobs: bool = False) -> int:
    """Run the UI until it exits or a stop signal arrives; returns its exit code (0 when stopped by a signal)."""
    from studykit.tracking.experiment import client

    taken = refuse_taken_port(host, port)
    if taken:
        return taken
    client(uri)
    if not is_loopback(host):
        print(f"warning: serving the MLflow UI on {host}: anyone who can reach this address can read and change "
              "the store (no login); prefer 127.0.0.1 and an SSH tunnel, or for a lab `studykit server --auth`",
              file=sys.stderr)
    cmd = command(uri, host, port, workers)
    print("running:", " ".join(cmd[5:]))
    print(links(uri, host, port), flush=True)
    return supervise(cmd, server_env(jobs))


def supervise(cmd: list[str], env: dict[str, str]) -> int:
    """Run `cmd` in a session of its own until it exits or a stop signal arrives; stop its whole tree either way.
    Returns its exit code, 0 when a signal stopped it (the UI and `studykit server`)."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    guard = procs.watchdog(proc.pid)  # stops the tree if this process is SIGKILLed (uvicorn outlived it before)
    asked = threading.Event()
    old = {sig: signal.signal(sig, lambda signum, frame: asked.set()) for sig in STOP_SIGNALS}
    try:
        while proc.poll() is None and not asked.wait(0.5):
            pass
    finally:
        stop(proc)
        for sig, previous in old.items():
            signal.signal(sig, previous)
        guard.stdin.close()
        guard.wait()
    if asked.is_set():
        return 0
    # A server ends only when told to: ending by itself is a failure even with exit code 0 (`mlflow server` exits
    # 0 when uvicorn could not bind its port)
    print(f"error: the server exited by itself (exit code {proc.returncode}); its output above says why",
          file=sys.stderr)
    return proc.returncode or 1


def refuse_taken_port(host: str, port: int) -> int | None:
    """1 (the exit code) after printing why, when `host`:`port` cannot be bound; None when it can."""
    why = procs.port_taken(host, port)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 1
    return None
