"""The smoke study through the real notebooks (papermill subprocesses) into a temporary MLflow store:
runs, tags, metrics, notebook artifacts, the verdict table; resume skips finished cells without duplicating
runs; a failing cell is recorded and the study exits non-zero. About 1.5-2 minutes on one core (marked slow).
The same checks run on the Ray executor against a tracking server (`ray_smoke`), with its own kill, rerun and
Ctrl-C checks at the end of the file."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from studykit.analysis import report as analysis
from studykit.study.spec import expand
from studykit.study.runner import run_study

from ray_smoke import ray_smoke  # noqa: F401 (a fixture: the same smoke study through --executor ray)
from studyproc import assert_trained, finished_cell_runs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"
TAGS = {"study", "rq", "claim", "condition", "model", "task", "seed", "alignment", "config_hash", "git_sha",
        "code_version", "base_weights"}
HAVE_ALIGNMENT = importlib.util.find_spec("studykit.probes.alignment") is not None


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run the smoke study twice: first only its ground-truth cell, then everything (so the first is skipped)."""
    work = tmp_path_factory.mktemp("smoke")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("STUDYKIT_CACHE", os.environ.get("STUDYKIT_CACHE") or str(tmp_path_factory.mktemp("cache")))
        first = run_study(SMOKE, workers=2, only="ground_truth", compare=False, progress=False)
        second = run_study(SMOKE, workers=2, progress=False)
        third = run_study(SMOKE, workers=2, progress=False, compare=False)
    assert_trained(finished_cell_runs(uri))  # ground truth too: the smoke model answers some problems
    return {"work": work, "uri": uri, "runs": (first, second, third)}


@pytest.fixture(scope="module", params=["local", "ray"])
def any_smoke(request):
    """The smoke study's three runs through the local executor (sqlite store) or the Ray one (a tracking server)."""
    return request.getfixturevalue("smoke" if request.param == "local" else "ray_smoke")


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri):
    client = _client(uri)
    exp = client.get_experiment_by_name("smoke")
    return client.search_runs([exp.experiment_id], "", max_results=100)


def test_cells_ran_then_resumed_without_duplicates(smoke):
    first, second, third = smoke["runs"]
    assert [(o.name, o.status) for o in first.outcomes] == [("ground_truth-custom-toy-s0", "done")]
    status = {o.name: o.status for o in second.outcomes}
    assert status["ground_truth-custom-toy-s0"] == "skipped"
    assert status["random-custom-toy-s0"] == "done", second.outcomes
    if HAVE_ALIGNMENT:
        assert status["alignment-custom-toy"] == "done", second.outcomes
        assert second.exit_code == 0
    assert all(o.status == "skipped" for o in third.outcomes if o.name != "alignment-custom-toy" or HAVE_ALIGNMENT)
    hashes = [r.data.tags.get("config_hash") for r in _runs(smoke["uri"]) if r.data.tags.get("config_hash")]
    assert len(hashes) == len(set(hashes)), "a resumed study created a duplicate run"


def test_runs_have_tags_metrics_and_notebook_artifacts(any_smoke):
    smoke = any_smoke
    client = _client(smoke["uri"])
    cells = {c.config.config_hash(): c for c in expand(SMOKE)}
    killed = smoke.get("killed", {}).get("run_id")  # the Ray flow kills one cell's first run (test_ray_study.py)
    if killed and client.get_run(killed).info.status == "FINISHED":
        killed = None  # killed after its first checkpoint: the rerun resumed it (the killed-task test checks how)
    trained = [r for r in _runs(smoke["uri"])
               if r.data.tags.get("rq") in ("rq1", "alignment") and r.info.run_id != killed]
    assert {r.data.tags["claim"] for r in trained} == {"ground_truth", "random"} | ({"alignment"} if HAVE_ALIGNMENT
                                                                                    else set())
    for run in trained:
        assert run.info.status == "FINISHED"
        assert TAGS <= set(run.data.tags)
        cell = cells[run.data.tags["config_hash"]]
        assert run.data.tags["seed"] == "0" and run.data.tags["model"] == "toy:custom"
        keys = set(run.data.metrics)
        assert any(analysis.parse_pass_key(k) == ("toy", 1) for k in keys)
        if run.data.tags["rq"] == "rq1":
            assert {"train/accuracy", "train/reward_mean"} <= keys
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/accuracy")]
            assert max(steps) == cell.config.train.steps
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
        assert artifacts == [f"notebook/{cell.name}.ipynb"]
        assert (smoke["work"] / "outputs/smoke" / f"{cell.name}.ipynb").is_file()


def test_compare_wrote_the_verdict_table(any_smoke):
    smoke = any_smoke
    _, second, _ = smoke["runs"]
    folder = smoke["work"] / "reports/smoke"
    report = json.loads((folder / "verdicts.json").read_text())
    records = report["records"]
    assert {r["claim"] for r in records} == {"ground_truth", "random"}
    assert report["cells"] == len(expand(SMOKE)) and report["missing"]["count"] == (0 if HAVE_ALIGNMENT else 1)
    for rec in records:
        assert set(rec) == set(analysis.RECORD_FIELDS)
        assert len(rec["delta_pass1_per_seed"]) == 1 and rec["seeds"] == [0] and rec["n_seeds"] == 1
        # one seed and counts logged: no interval, and the verdict says why (runs without counts: plain `uncertain`)
        assert rec["verdict"] in ("baseline", "n/a (gt flat)", "uncertain (1 seed)") and rec["ratio_lo"] is None
        assert rec["provenance"] == "same"  # one checkout, one toy build: the row's runs share both tags
    assert "Rule:" in (folder / "verdicts.md").read_text() and "| random |" in second.verdicts
    assert (smoke["work"] / "outputs/smoke/10_compare.ipynb").is_file()
    if HAVE_ALIGNMENT:
        assert (folder / "pass_at_k.png").is_file()
        assert all(r["alignment"].startswith(("strong", "weak")) for r in records)
    parents = [r for r in _runs(smoke["uri"]) if r.data.tags.get("rq") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # three study runs, one parent


def test_a_failing_cell_is_recorded_and_the_study_fails(tmp_path, monkeypatch):
    # A failure validation cannot see: the data file exists but is not JSON Lines (read only when the run starts).
    (tmp_path / "broken.jsonl").write_text("this is not json\n")
    broken_data = {"data": {"task": "math", "task_options": {"path": str(tmp_path / "broken.jsonl")}}}
    study = yaml.safe_load(SMOKE.read_text())
    study.update(name="broken", base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None,
                 conditions={"ground_truth": {"rq": "rq1", "overrides": broken_data}})
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("STUDYKIT_CACHE", os.environ.get("STUDYKIT_CACHE") or str(tmp_path / "cache"))
    summary = run_study(path, workers=1, progress=False, compare=False)
    assert summary.exit_code == 1
    failed = json.loads((tmp_path / "outputs/broken/failed.json").read_text())
    assert [f["name"] for f in failed] == ["ground_truth-custom-toy-s0"]
    assert "not valid JSON" in failed[0]["error"]  # the notebook's exception reaches failed.json


FAKE_CELL = """from studykit.config.schema import validate
from studykit import tracking as tk
import mlflow
cfg = validate(dict(study=study, rq=rq, claim=claim, condition=condition, model=model, data=data, reward=reward,
                    algo=algo, train=train, eval=eval, tracking=tracking))
run = mlflow.start_run(experiment_id=tk.experiment_for(cfg))
mlflow.set_tags(tk.run_tags(cfg) | tk.owner_tags())
mlflow.end_run("FAILED" if reward["name"] == "random" else "FINISHED")  # the notebook itself does not raise
print("run", run.info.run_id)"""


def _notebook(path, *sources, params=""):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [new_code_cell(params, metadata={"tags": ["parameters"]})] + [new_code_cell(s) for s in sources]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return str(path)  # absolute: study.py resolves a relative one against the study FILE, not its folder


def test_a_failed_run_and_a_failed_compare_fail_the_study(tmp_path, monkeypatch):
    # Regression: a run that ended FAILED while its notebook exited 0 counted as done, and a failing compare
    # step left the exit code at 0.
    study = yaml.safe_load(SMOKE.read_text())
    params = "\n".join(f"{k} = None" for k in ("study", "rq", "claim", "condition", "model", "data", "reward", "algo",
                                                "train", "eval", "tracking"))
    study.update(name="failing", base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None, notebooks={
        "rq1": _notebook(tmp_path / "fake.ipynb", FAKE_CELL, params=params),
        "compare": _notebook(tmp_path / "compare.ipynb", "raise RuntimeError('compare broke')",
                             params="study_file = uri = thresholds = None")})
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    summary = run_study(path, workers=1, progress=False)
    status = {o.name: (o.status, o.error) for o in summary.outcomes}
    assert status["ground_truth-custom-toy-s0"] == ("done", None)
    assert status["random-custom-toy-s0"][0] == "failed" and "ended FAILED" in status["random-custom-toy-s0"][1]
    assert "compare broke" in summary.compare_error and summary.exit_code == 1
    failed = json.loads((tmp_path / "outputs/failing/failed.json").read_text())
    assert [f["name"] for f in failed] == ["random-custom-toy-s0"]
    again = run_study(path, workers=1, progress=False, compare=False)
    assert [o.status for o in again.outcomes] == ["skipped", "failed"] and again.exit_code == 1


def _disk_full(client, run_id, nb):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device", "/artifacts/notebook/" + Path(nb).name)


def _server_gone(client, run_id, nb):
    """What MLflow's client raises once its retries are spent (mlflow.utils.rest_utils.http_request)."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        raise requests.exceptions.ConnectionError("Max retries exceeded: Connection refused")
    except requests.exceptions.ConnectionError as err:
        raise MlflowException(f"API request to http://127.0.0.1:9/api/2.0/mlflow/runs/get failed with exception {err}")


@pytest.mark.parametrize("fault,line", [
    (_disk_full, "error: disk full: no space left to write /artifacts/notebook/"),
    (_server_gone, "error: the tracking server sqlite:"),
], ids=["disk_full", "server_gone"])
def test_a_full_disk_or_a_gone_server_stops_the_study_in_one_line_and_a_rerun_completes(tmp_path, monkeypatch, capsys, fault, line):
    # Regression (issue 21): a full disk ended the study with a raw OSError traceback and left its parent run
    # RUNNING; so did a server outage past the client's retry budget. The fault is injected where the driver writes
    # (logging the first cell's notebook).
    from studykit.study import claims
    from studykit.cli import commands as cli
    from studykit.tracking.experiment import study_run

    study = yaml.safe_load(SMOKE.read_text())
    params = "\n".join(f"{k} = None" for k in ("study", "rq", "claim", "condition", "model", "data", "reward", "algo",
                                                "train", "eval", "tracking"))
    study.update(name="full", base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None,
                 notebooks={"rq1": _notebook(tmp_path / "fake.ipynb", FAKE_CELL, params=params)},
                 conditions={"ground_truth": {"rq": "rq1"},
                             "incorrect": {"rq": "rq1", "overrides": {"reward": {"name": "incorrect"}}}})
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("STUDYKIT_CACHE", os.environ.get("STUDYKIT_CACHE") or str(tmp_path / "cache"))
    real_log = claims.log_notebook
    monkeypatch.setattr(claims, "log_notebook", fault)
    assert cli.main(["study", str(path), "--workers", "1", "--no-compare"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    said = next(x for x in err.splitlines() if x.startswith("error:"))
    assert said.startswith(line) and "run the same command" in said and "what finished is kept" in said
    client = _client(uri)
    parent = client.get_run(study_run("full", "full", uri))
    assert parent.info.status == "FAILED" and parent.data.tags["status_reason"] == said[len("error: "):]
    finished = [r for r in _runs_of(client, "full") if r.info.status == "FINISHED" and r.data.tags.get("claim")]
    assert len(finished) == 1  # the cell that ran is kept (its notebook is on disk, logged by the rerun)
    monkeypatch.setattr(claims, "log_notebook", real_log)
    again = run_study(path, workers=1, progress=False, compare=False)
    # the first cell's run is kept: its notebook, on disk, is logged now (skipped: nothing to run again)
    assert again.exit_code == 0 and [o.status for o in again.outcomes] == ["skipped", "done"]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert len([r for r in _runs_of(client, "full") if r.data.tags.get("claim")]) == 2  # nothing ran twice


def _runs_of(client, study):
    return client.search_runs([client.get_experiment_by_name(study).experiment_id], "", max_results=100)


# ---- the Ray executor against a tracking server (the `ray_smoke` fixture, tests/ray_smoke.py): a killed Ray worker
# fails its cell and nothing else, the rerun runs only that cell, a third run skips everything, every run and notebook
# went through the server; the owner probe; Ctrl-C.

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
    # Its owner was judged dead and the run marked FAILED; when the kill came after its first checkpoint, the rerun
    # resumed that same run (FAILED runs with a checkpoint are resumable) and the reason moved to previous_status_reason.
    if run.info.status == "FAILED":
        assert "gone" in run.data.tags["status_reason"]
    else:
        assert run.info.status == "FINISHED" and run.data.tags.get("resumed_from_step")
        assert "gone" in run.data.tags["previous_status_reason"]
    assert _status(second) == dict(zip(CELLS, ("skipped", "skipped", "done"))) and second.exit_code == 0
    assert set(_status(third).values()) == {"skipped"} and third.exit_code == 0


def test_each_cell_has_one_finished_run_all_through_the_server(ray_smoke):
    client = MlflowClient(ray_smoke["uri"])
    exp = client.get_experiment_by_name("smoke")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # proxied: no client-side path
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    cells = [r for r in runs if r.data.tags.get("config_hash")]
    hashes = [r.data.tags["config_hash"] for r in cells]
    assert len(cells) == 3 and len(set(hashes)) == 3, "a cell ran twice"
    served = ray_smoke["work"] / "mlruns/server-artifacts" / exp.experiment_id
    for r in cells:
        assert r.info.artifact_uri.startswith("mlflow-artifacts:")
        assert r.data.tags["owner_host"] and r.data.tags["owner_pid"].isdigit()
        assert list((served / r.info.run_id / "artifacts/notebook").glob("*.ipynb")), "notebook not on the server"
    (parent,) = [r for r in runs if r.data.tags.get("rq") == "study"]  # the report lives in the study's run
    assert (served / parent.info.run_id / "artifacts/report").is_dir()
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in cells)


def test_the_owner_probe_asks_the_runs_own_node(ray_smoke, tmp_path):
    from studykit.infra import procs
    from studykit.study.claims import owner_state
    from studykit.study.executors.ray import RayExecutor

    ex = RayExecutor(tmp_path, ray_smoke["uri"])
    dead = _dead_pid()
    me = {"owner_host": procs.hostname(), "owner_pid": str(os.getpid()), "owner_start": procs.start_time(os.getpid())}
    assert ex.owner_state(me) == "alive"  # run on the node Ray knows by this host name
    assert ex.owner_state(me | {"owner_pid": str(dead), "owner_start": ""}) == "gone"
    elsewhere = me | {"owner_host": "a-host-outside-this-cluster"}
    assert ex.owner_state(elsewhere) == "unknown"
    assert owner_state(elsewhere) == "unknown" and owner_state(elsewhere, ex.owner_state) == "unknown"
    assert owner_state(elsewhere, lambda tags: "gone") == "gone"  # another host is judged only by the probe


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


SLOW_CELL = """from studykit.config.schema import validate
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
            # a cell's run (the study's own run is RUNNING from the start)
            if exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING' and tags.rq = 'rq1'"):
                time.sleep(1.0)  # both cells submitted: one runs, one is pending
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.3)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    summary = run_study(path, executor="ray", uri=ray_smoke["uri"], progress=False)
    assert summary.interrupted and summary.exit_code == 130
    assert {o.status for o in summary.outcomes} == {"interrupted"}
    runs = client.search_runs([client.get_experiment_by_name("stopping").experiment_id], "")
    (study_run,) = [r for r in runs if r.data.tags.get("rq") == "study"]
    assert study_run.info.status == "KILLED"
    runs = [r for r in runs if r.data.tags.get("config_hash")]
    assert len(runs) == 1 and runs[0].info.status == "KILLED", [(r.info.status, r.data.tags) for r in runs]
    kernel = int(runs[0].data.tags["owner_pid"])
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE


def test_the_study_is_a_tree_of_named_runs_with_sources_and_datasets(smoke):
    from studykit.tracking import experiment as tracking

    client = _client(smoke["uri"])
    exp = client.get_experiment_by_name("smoke")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = _runs(smoke["uri"])
    (parent,) = [r for r in runs if r.data.tags.get("rq") == "study"]
    assert "report/verdicts.md" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    cells = {c.config.config_hash(): c for c in expand(SMOKE)}
    children = [r for r in runs if r.data.tags.get("config_hash")]
    assert {r.data.tags["config_hash"] for r in children} == set(cells)
    for run in children:
        cell = cells[run.data.tags["config_hash"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["mlflow.runName"] == tracking.display_name(cell.config)
        assert run.data.tags["mlflow.source.name"].endswith(cell.notebook.name)
        contexts = {t.value for d in run.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context"}
        assert contexts == ({"eval/toy"} if cell.config.rq == "alignment" else {"training", "eval/toy"})
    evals = {d.dataset.digest for r in children if r.data.tags["rq"] == "rq1" for d in r.inputs.dataset_inputs
             if d.dataset.name.startswith("toy ")}
    assert len(evals) == 1  # both cells were evaluated on the same problems: one dataset


def test_the_ui_in_a_real_browser_lists_the_cells_under_the_study_run(smoke):
    from studykit.tracking import uicheck

    if uicheck.chromium_path() is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's chromium; locally: apt-get install chromium)")
    pytest.importorskip("playwright", reason="the dev extra's playwright drives chromium")
    runs = _runs(smoke["uri"])
    (parent,) = [r for r in runs if r.data.tags.get("rq") == "study"]
    names = sorted(r.data.tags["mlflow.runName"] for r in runs if r.data.tags.get("config_hash"))
    exp_id = _client(smoke["uri"]).get_experiment_by_name("smoke").experiment_id
    with uicheck.serving(smoke["uri"]) as base, uicheck.page() as pg:
        uicheck.open_runs(pg, base, exp_id, "study smoke")
        collapsed = uicheck.run_rows(pg)
        assert [r.splitlines()[-1] for r in collapsed] == ["study smoke"]  # the cells are nested, not top level
        shown = [r.splitlines()[-1] for r in uicheck.expand(pg, "study smoke", names[0])]
        assert shown[0] == "study smoke" and sorted(shown[1:]) == names, shown
        # The screenshot bench's chart: the runs a filter keeps, one metric's card (its text names the runs drawn).
        (random,) = [r for r in runs if r.data.tags.get("claim") == "random"]
        uicheck.filter_runs(pg, "tags.claim = 'random'")
        card = uicheck.chart_view(pg, "eval/toy/pass_at_1", random.data.tags["mlflow.runName"])
        assert "eval/toy/pass_at_1" in card.inner_text()
