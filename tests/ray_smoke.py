"""The smoke study through `--executor ray` against a real `studykit server` on a free loopback port, with a real
Ray instance (`ray.init(num_cpus=2)`, never local_mode). Imported by tests/test_study.py (which runs the same checks on
the local and the Ray executor) and tests/test_ray_study.py.

`start_server(work)` starts `studykit server` in `work` and waits until it answers; `stop_server` stops it with
SIGTERM and reports what was left. The `ray_smoke` fixture runs the study three times, like the local smoke fixture:
1. every cell, no compare; once the `random` cell's run is RUNNING on the server, the Ray worker running that cell is
   SIGKILLed (the kernel's owner pid -> papermill -> the Ray worker);
2. every cell again with the compare step: only the killed cell runs;
3. every cell, no compare: all skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from studykit.infra.procs import answers, free_port
from studyproc import assert_trained, finished_cell_runs

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"
START_S = 300  # a loaded 2-core CI machine takes tens of seconds to import and start mlflow


def start_server(work: Path, *extra: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    log = open(work / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "studykit.cli.commands", "server", "--port", str(port), *extra], cwd=work,
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_S
    while not answers(uri + "/health"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("studykit server did not start:\n" + (work / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    return proc, uri


def stop_server(proc: subprocess.Popen, uri: str) -> dict:
    """SIGTERM the server; its exit code, the processes of its tree still alive 10 s later, whether it answers."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=90)
    _, alive = psutil.wait_procs(tree, timeout=10)
    return {"rc": rc, "children": len(tree), "alive": [p.pid for p in alive], "answers": answers(uri + "/health")}


def _cell_runs(client, claim: str):
    exp = client.get_experiment_by_name("smoke")
    return [] if exp is None else client.search_runs([exp.experiment_id], f"tags.claim = '{claim}'")


def kill_worker_of(uri: str, claim: str, done: threading.Event, record: dict) -> None:
    """Wait for the claim's run to be RUNNING with its owner tags, then SIGKILL the Ray worker that runs it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    while not done.is_set():
        running = [r for r in _cell_runs(client, claim) if r.info.status == "RUNNING" and "owner_pid" in r.data.tags]
        if running:
            kernel = psutil.Process(int(running[0].data.tags["owner_pid"]))
            worker = kernel.parent().parent()  # kernel <- papermill <- the Ray worker process
            record.update(run_id=running[0].info.run_id, worker=worker.pid, cmdline=" ".join(worker.cmdline()))
            worker.send_signal(signal.SIGKILL)
            return
        time.sleep(0.3)


@pytest.fixture(scope="module")
def ray_smoke(tmp_path_factory):
    import ray

    from studykit.study.runner import run_study

    work = tmp_path_factory.mktemp("ray_smoke")
    server, uri = start_server(work)
    started_ray = not ray.is_initialized()
    if started_ray:
        _init_ray(ray)
    killed: dict = {}
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(work)
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            mp.setenv("STUDYKIT_CACHE", os.environ.get("STUDYKIT_CACHE") or str(tmp_path_factory.mktemp("cache")))
            done = threading.Event()
            killer = threading.Thread(target=kill_worker_of, args=(uri, "random", done, killed), daemon=True)
            killer.start()
            first = run_study(SMOKE, executor="ray", uri=uri, progress=False, compare=False)
            done.set()
            killer.join(5)
            second = run_study(SMOKE, executor="ray", uri=uri, progress=False)
            third = run_study(SMOKE, executor="ray", uri=uri, progress=False, compare=False)
        assert_trained(finished_cell_runs(uri))
        yield {"work": work, "uri": uri, "runs": (first, second, third), "killed": killed, "executor": "ray"}
    finally:
        if started_ray:
            ray.shutdown()
        if server.poll() is None:
            stop_server(server, uri)


def _init_ray(ray, tries: int = 3) -> None:
    """ray.init(num_cpus=2), again after a raylet startup timeout: Ray waits a fixed 30 s for its raylet to register,
    which a loaded 2-core machine can miss (seen once, while a study shared the cores)."""
    for attempt in range(tries):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            return
        except Exception as err:  # Ray raises a bare Exception for this timeout
            if "timed out during startup" not in str(err) or attempt == tries - 1:
                raise
            ray.shutdown()
