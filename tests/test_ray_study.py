"""The Ray executor against a tracking server (fixture in tests/ray_smoke.py): a killed Ray worker fails its cell
and nothing else, the rerun runs only that cell and finishes it, a third run skips everything, and every run and
notebook went through the server. Shares its expensive fixture with tests/test_study.py's executor-parametrized
checks (runs, tags, notebooks, verdict table)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from ray_smoke import ray_smoke  # noqa: F401 (the fixture)

pytestmark = pytest.mark.slow

CELLS = ("alignment-custom-toy", "ground_truth-custom-toy-s0", "random-custom-toy-s0")


def _status(summary) -> dict[str, str]:
    return {o.name: o.status for o in summary.outcomes}


def test_a_killed_ray_task_fails_its_cell_and_a_rerun_finishes_it(ray_smoke):
    first, second, third = ray_smoke["runs"]
    killed = ray_smoke["killed"]
    assert "ray" in killed["cmdline"].lower(), killed  # the process killed was the Ray worker of the cell
    assert _status(first) == dict(zip(CELLS, ("done", "done", "failed"))) and first.exit_code == 1
    error = next(o.error for o in first.outcomes if o.name == "random-custom-toy-s0")
    assert "Ray task of cell random-custom-toy-s0 failed" in error
    assert [o.name for o in first.failed] == ["random-custom-toy-s0"]  # (failed.json: the latest run's, now empty)
    assert json.loads((ray_smoke["work"] / "outputs/smoke/failed.json").read_text()) == []
    run = MlflowClient(ray_smoke["uri"]).get_run(killed["run_id"])
    assert run.info.status == "FAILED" and "gone" in run.data.tags["status_reason"]  # its owner judged dead
    assert _status(second) == dict(zip(CELLS, ("skipped", "skipped", "done"))) and second.exit_code == 0
    assert set(_status(third).values()) == {"skipped"} and third.exit_code == 0


def test_each_cell_has_one_finished_run_all_through_the_server(ray_smoke):
    client = MlflowClient(ray_smoke["uri"])
    exp = client.get_experiment_by_name("smoke")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # proxied: no client-side path
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    cells = [r for r in runs if r.data.tags.get("rq") != "report"]
    hashes = [r.data.tags["config_hash"] for r in cells]
    assert len(cells) == 3 and len(set(hashes)) == 3, "a cell ran twice"
    served = ray_smoke["work"] / "mlruns/server-artifacts" / exp.experiment_id
    for r in cells:
        assert r.info.artifact_uri.startswith("mlflow-artifacts:")
        assert r.data.tags["owner_host"] and r.data.tags["owner_pid"].isdigit()
        assert list((served / r.info.run_id / "artifacts/notebook").glob("*.ipynb")), "notebook not on the server"
    reports = [r for r in runs if r.data.tags.get("rq") == "report"]
    assert len(reports) == 1 and (served / reports[0].info.run_id / "artifacts").is_dir()


def test_the_owner_probe_asks_the_runs_own_node(ray_smoke, tmp_path):
    from studykit import procs
    from studykit.claims import owner_state
    from studykit.executors.ray import RayExecutor

    ex = RayExecutor(tmp_path, ray_smoke["uri"])
    dead = psutil_dead_pid()
    me = {"owner_host": procs.hostname(), "owner_pid": str(os.getpid()), "owner_start": procs.start_time(os.getpid())}
    assert ex.owner_state(me) == "alive"  # run on the node Ray knows by this host name
    assert ex.owner_state(me | {"owner_pid": str(dead), "owner_start": ""}) == "gone"
    elsewhere = me | {"owner_host": "a-host-outside-this-cluster"}
    assert ex.owner_state(elsewhere) == "unknown"
    assert owner_state(elsewhere) == "unknown" and owner_state(elsewhere, ex.owner_state) == "unknown"
    assert owner_state(elsewhere, lambda tags: "gone") == "gone"  # another host is judged only by the probe


def psutil_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


SLOW_CELL = """from studykit.config import validate
from studykit import tracking as tk
import mlflow, time
cfg = validate(dict(study=study, rq=rq, claim=claim, condition=condition, model=model, data=data, reward=reward,
                    algo=algo, train=train, eval=eval, tracking=tracking))
mlflow.start_run(experiment_id=tk.experiment_for(cfg))
mlflow.set_tags(tk.run_tags(cfg) | tk.owner_tags())
try:
    time.sleep(600)
except KeyboardInterrupt:
    mlflow.end_run("KILLED")
    raise"""


def test_ctrl_c_cancels_running_and_pending_ray_tasks(ray_smoke, tmp_path, monkeypatch):
    import yaml

    from studykit.study_runner import run_study
    from test_study import ROOT, SMOKE, _notebook

    params = "\n".join(f"{k} = None" for k in ("study", "rq", "claim", "condition", "model", "data", "reward", "algo",
                                                "train", "eval", "tracking"))
    study = yaml.safe_load(SMOKE.read_text())
    study.update(name="stopping", base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None,
                 resources={"num_cpus": 2},  # the whole 2-CPU Ray instance: the second cell waits in Ray's queue
                 notebooks={"rq1": _notebook(tmp_path / "slow.ipynb", SLOW_CELL, params=params)})
    path = tmp_path / "stopping.yaml"
    path.write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(ray_smoke["uri"])

    def interrupt_when_running():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            exp = client.get_experiment_by_name("stopping")
            if exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
                time.sleep(1.0)  # both cells submitted: one runs, one is pending
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.3)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    summary = run_study(path, executor="ray", uri=ray_smoke["uri"], progress=False)
    assert summary.interrupted and summary.exit_code == 130
    assert {o.status for o in summary.outcomes} == {"interrupted"}
    runs = client.search_runs([client.get_experiment_by_name("stopping").experiment_id], "")
    assert len(runs) == 1 and runs[0].info.status == "KILLED", [(r.info.status, r.data.tags) for r in runs]
    kernel = int(runs[0].data.tags["owner_pid"])
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE
