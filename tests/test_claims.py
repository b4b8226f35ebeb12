"""Cell claims and settling on a real sqlite MLflow store: stale RUNNING runs are marked KILLED with a reason, a live
or foreign owner makes the cell busy, a FINISHED run without its notebook gets it from disk or is demoted so the cell
runs again, stale report runs are reaped, and a claim excludes a second holder until it is released."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from studykit.study import claims
from studykit.tracking import experiment as tracking
from studykit.config.schema import validate


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('claims')}/mlflow.db"  # one store: creating one costs seconds
    return uri, tracking.client(uri), tracking.experiment_id("c", uri)


@pytest.fixture
def store(shared, request):
    uri, client, exp = shared
    seed = abs(hash(request.node.name)) % 10**6  # a cell of its own per test
    cfg = validate({"study": "c", "rq": "rq1", "claim": "ground_truth", "train": {"seed": seed},
                    "tracking": {"uri": uri}})
    return uri, cfg, client, exp


def _run(store, status="RUNNING", **tags):
    uri, cfg, client, exp = store
    run = client.create_run(exp, tags={"config_hash": cfg.config_hash(), **tags})
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _notebook(path, run_id, complete=True):
    nb = new_notebook(cells=[new_code_cell("print(result.run_id)", outputs=[
        new_output("stream", name="stdout", text=f"FINISHED {run_id}\n")])])
    nb.metadata["papermill"] = {"end_time": "2026-01-01T00:00:00" if complete else None, "exception": None}
    nbformat.write(nb, path)
    return path


def _status(store, run_id):
    run = store[2].get_run(run_id)
    return run.info.status, run.data.tags.get("status_reason", "")


def test_stale_running_runs_are_killed_with_a_reason(store, tmp_path):
    legacy = _run(store)  # no owner tags: written by older code
    dead = _run(store, **tracking.owner_tags(_gone_pid()))
    settled = claims.settle(store[1], store[0], tmp_path / "cell.ipynb")
    assert settled.state == "todo"
    for run_id, owner in ((legacy, "no owner tags"), (dead, "gone")):
        status, reason = _status(store, run_id)
        assert status == "KILLED" and reason.startswith("stale") and owner in reason


def test_a_live_or_foreign_owner_makes_the_cell_busy(store, tmp_path):
    foreign = _run(store, owner_host="elsewhere", owner_pid="1", owner_start="1")
    settled = claims.settle(store[1], store[0], tmp_path / "cell.ipynb", wait_s=0.1)
    assert settled.state == "busy" and "elsewhere:1" in settled.note
    store[2].set_terminated(foreign, "KILLED")
    live = _run(store, **tracking.owner_tags())
    t0 = time.monotonic()
    assert claims.settle(store[1], store[0], tmp_path / "cell.ipynb", wait_s=0.5).state == "busy"
    assert time.monotonic() - t0 >= 0.5 and _status(store, live)[0] == "RUNNING"  # waited, touched nothing


def test_a_foreign_owner_is_judged_only_by_its_hosts_probe(store, tmp_path):
    asked = []

    def probe(tags):  # stands in for the Ray executor's probe task on the owner's node
        asked.append(tags["owner_host"])
        return "alive" if len(asked) < 2 else "gone"

    foreign = _run(store, owner_host="node-2", owner_pid="4242", owner_start="7")
    settled = claims.settle(store[1], store[0], tmp_path / "cell.ipynb", wait_s=30, probe=probe)
    assert settled.state == "todo" and asked == ["node-2", "node-2"]  # alive at first, then gone: waited for it
    status, reason = _status(store, foreign)
    assert status == "KILLED" and "node-2:4242 gone" in reason
    mine = _run(store, **tracking.owner_tags(_gone_pid()))  # this host's runs never reach the probe
    assert claims.settle(store[1], store[0], tmp_path / "cell.ipynb", probe=lambda tags: "alive").state == "todo"
    assert _status(store, mine)[0] == "KILLED"


def test_a_finished_run_gets_its_notebook_from_disk(store, tmp_path):
    run_id = _run(store, "FINISHED")
    assert claims.finished_run(store[1], store[0]) is None  # FINISHED without its notebook is not finished
    settled = claims.settle(store[1], store[0], _notebook(tmp_path / "cell.ipynb", run_id))
    assert (settled.state, settled.run_id) == ("done", run_id)
    assert claims.finished_run(store[1], store[0]) == run_id
    assert store[2].get_run(run_id).data.tags["notebook_relogged"] == "true"


@pytest.mark.parametrize("notebook", ["partial", "another run's", "none"])
def test_a_finished_run_without_a_usable_notebook_is_demoted_and_the_cell_runs_again(store, tmp_path, notebook):
    run_id = _run(store, "FINISHED")
    path = tmp_path / "cell.ipynb"
    if notebook != "none":
        _notebook(path, run_id if notebook == "partial" else "0" * 32, complete=notebook != "partial")
    assert claims.settle(store[1], store[0], path).state == "todo"
    status, reason = _status(store, run_id)
    assert status == "KILLED" and "notebook was lost" in reason


def test_conclude_fails_a_run_its_dead_notebook_left_running(store, tmp_path):
    since = time.time() - 1
    run_id = _run(store, **tracking.owner_tags(_gone_pid()))
    path = _notebook(tmp_path / "cell.ipynb", run_id, complete=False)
    assert claims.conclude(store[1], store[0], path, rc=1, since=since, stopped=False) == (run_id, "FAILED")
    assert "exit code 1" in _status(store, run_id)[1]
    assert claims.has_notebook(store[2], run_id)


def test_conclude_touches_only_the_run_with_its_own_claim_token(store, tmp_path):
    # Regression (issue 21): another driver's run of the same config, RUNNING or just ended, was taken for this
    # cell's run: marked FAILED and given this driver's notebook.
    since = time.time() - 1
    mine = _run(store, "FINISHED", claim_token="a" * 32)
    other = _run(store, claim_token="b" * 32, **tracking.owner_tags(_gone_pid()))  # newer, RUNNING, owner gone
    path = _notebook(tmp_path / "cell.ipynb", mine)
    assert claims.conclude(store[1], store[0], path, rc=0, since=since, stopped=False,
                           token="a" * 32) == (mine, "FINISHED")
    assert _status(store, other) == ("RUNNING", "") and not claims.has_notebook(store[2], other)
    assert claims.has_notebook(store[2], mine)
    assert claims.conclude(store[1], store[0], path, rc=1, since=since, stopped=False, token="c" * 32) == (None, "")
    assert _status(store, other) == ("RUNNING", "")  # a token no run carries: the cell made no run


def test_stale_report_runs_are_reaped(store):
    uri, _, client, exp = store
    stale = client.create_run(exp, tags={"rq": "report", **tracking.owner_tags(_gone_pid())}).info.run_id
    claims.reap_reports("c", uri)
    assert _status(store, stale)[0] == "KILLED"


def test_a_claim_excludes_a_second_holder_until_released(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # claims only: no store is opened
    waited, got = [], []
    stop = threading.Event()
    with claims.claim(uri, "c", "h1") as held:
        assert held
        with claims.claim(uri, "c", "h2") as other:  # another cell: no wait
            assert other

        def second():
            with claims.claim(uri, "c", "h1", stop.is_set, on_wait=waited.append) as h:
                got.append(h)

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.8)
        assert got == [] and waited and "pid" in waited[0]  # the holder is named
        stop.set()
        t.join(5)
    assert got == [False]
    with claims.claim(uri, "c", "h1") as held:
        assert held
