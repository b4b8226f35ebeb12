"""Seconds from launch until the MLflow UI answers, and how many processes it runs: `studykit ui` (one web worker,
no job runner) against plain `mlflow ui` with MLflow's defaults, on the same store (a copy, so neither migrates the
other's). Prints one line per variant and a JSON line.

    .venv/bin/python bench/ui_start.py [--uri sqlite:///mlruns/mlflow.db] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from studykit.tracking import uicheck
from studykit.infra.procs import free_port

ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process and its live descendants (including their reaped children)."""
    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], port: int, env: dict[str, str], timeout: float = 600) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not uicheck.api_answers(f"http://127.0.0.1:{port}"):
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{cmd[:4]} did not answer (exit {proc.poll()})")
            time.sleep(0.2)
        seconds = time.monotonic() - t0
        cpu = _cpu_seconds(proc.pid)  # load-independent: the CPU time the tree spent getting there
        time.sleep(3)  # let late children (job runner workers) appear before counting
        tree = psutil.Process(proc.pid).children(recursive=True)
        return {"seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "processes": 1 + len(tree)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for p in psutil.process_iter():  # job runner processes that left the group
            try:
                if str(port) in " ".join(p.cmdline()) and p.pid != os.getpid():
                    p.kill()
            except psutil.Error:
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", help="sqlite store to copy (default: an empty store)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ui_start_"))
    results: dict[str, list[dict]] = {"studykit ui": [], "mlflow ui (defaults)": []}
    for i in range(args.repeat):
        for name in results:
            db = tmp / f"{i}-{name.split()[0]}.db"
            if args.uri:
                shutil.copy(args.uri.removeprefix("sqlite:///"), db)
            uri, port = f"sqlite:///{db}", free_port()
            env = dict(os.environ)
            if name == "studykit ui":
                cmd = [sys.executable, "-m", "studykit.cli.commands", "ui", "--uri", uri, "--port", str(port)]
            else:
                env.pop("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)
                cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port)]
            results[name].append(measure(cmd, port, env))
            r = results[name][-1]
            print(f"{name:22s} run {i}: answers after {r['seconds']:6.1f} s wall, {r['cpu_s']:5.1f} CPU s, "
                  f"{r['processes']} processes", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2), **results}))


if __name__ == "__main__":
    main()
