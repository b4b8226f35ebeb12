"""Several study drivers sharing one `studykit server` (loopback, a free port): claims live on the server, so two
`studykit study` processes started from two folders (two machines, in effect) run each cell once, never end or
write a run they do not own, and both exit 0; a dead holder's claim is taken over (its process gone on this host,
or its heartbeat stopped on another). Cells are fake notebooks (a run that lasts a few seconds): no training, no
toy build. One server for the module; about 30-60 s on a loaded 2-core machine (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ray_smoke import start_server, stop_server
from test_study import _notebook

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"
PARAMS = "\n".join(f"{k} = None" for k in ("study", "rq", "claim", "condition", "model", "data", "reward", "algo",
                                            "train", "eval", "tracking"))
# A cell: one run that stays RUNNING for a moment (so the drivers overlap), tagged with the driver that ran it; every
# execution is appended to a ledger shared by both drivers.
SLOW_CELL = """import json, os, time
import mlflow
from studykit.config.schema import validate
from studykit import tracking as tk
cfg = validate(dict(study=study, rq=rq, claim=claim, condition=condition, model=model, data=data, reward=reward,
                    algo=algo, train=train, eval=eval, tracking=tracking))
driver = os.environ["STUDYKIT_TEST_DRIVER"]
with open(os.environ["STUDYKIT_TEST_LEDGER"], "a") as f:
    f.write(json.dumps({"hash": cfg.config_hash(), "driver": driver}) + "\\n")
with mlflow.start_run(experiment_id=tk.experiment_for(cfg)):
    mlflow.set_tags(tk.run_tags(cfg) | tk.owner_tags() | {"driver": driver})
    time.sleep(3)"""
COMPARE = """import os, pathlib
out = pathlib.Path("reports/shared/verdicts.md")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("no verdicts: fake cells\\n")"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("server")
    proc, uri = start_server(work)
    yield {"work": work, "uri": uri}
    stop_server(proc, uri)


def _study(folder: Path) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(name="shared", base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None,
                grid={"models": {"tiny/not-a-toy": {}}, "tasks": ["toy"], "seeds": [0, 1]},
                notebooks={"rq1": _notebook(folder / "cell.ipynb", SLOW_CELL, params=PARAMS),
                           "compare": _notebook(folder / "compare.ipynb", COMPARE,
                                                params="study_file = uri = thresholds = None")})
    path = folder / "shared.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _driver(folder: Path, uri: str, ledger: Path) -> subprocess.Popen:
    folder.mkdir()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, STUDYKIT_TEST_DRIVER=folder.name, STUDYKIT_TEST_LEDGER=str(ledger),
               OMP_NUM_THREADS="1", STUDYKIT_WARM_KERNELS="0")
    log = open(folder / "cli.log", "w")
    return subprocess.Popen([sys.executable, "-m", "studykit.cli.commands", "study", str(_study(folder)),
                             "--workers", "2"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_two_drivers_in_two_folders_run_each_cell_once(served, tmp_path):
    from mlflow.tracking import MlflowClient

    ledger = tmp_path / "ledger.jsonl"
    drivers = {name: _driver(tmp_path / name, served["uri"], ledger) for name in ("a", "b")}
    codes = {name: p.wait(timeout=600) for name, p in drivers.items()}
    logs = {name: (tmp_path / name / "cli.log").read_text() for name in drivers}
    assert codes == {"a": 0, "b": 0}, {n: log[-3000:] for n, log in logs.items()}
    ran = [json.loads(line) for line in ledger.read_text().splitlines()]
    hashes = [r["hash"] for r in ran]
    assert len(hashes) == 4 and len(set(hashes)) == 4, f"a cell ran twice: {ran}"
    client = MlflowClient(served["uri"])
    exp = client.get_experiment_by_name("shared")
    cells = [r for r in client.search_runs([exp.experiment_id], "") if r.data.tags.get("config_hash")]
    assert len(cells) == 4 and {r.data.tags["config_hash"] for r in cells} == set(hashes)
    for run in cells:
        assert run.info.status == "FINISHED" and "status_reason" not in run.data.tags, run  # nobody marked it
        notebooks = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
        assert len(notebooks) == 1, notebooks  # its own driver's notebook only
        driver = run.data.tags["driver"]  # the driver that ran it has the executed notebook naming the run
        nb = next((tmp_path / driver / "outputs/shared").glob(f"*{run.data.tags['condition']}*s{run.data.tags['seed']}*.ipynb"))
        assert run.info.run_id in nb.read_text()
    lines = [next(x for x in log.splitlines() if x.startswith("study shared:")) for log in logs.values()]
    assert sum(_count(line, "done") for line in lines) == 4 and all(
        _count(line, "done") + _count(line, "skipped") == 4 for line in lines), lines
    claims = [e.name for e in client.search_experiments() if e.name.startswith("studykit-claims/")]
    assert claims == [], claims  # every claim released (renamed away and deleted)


def _count(line: str, status: str) -> int:
    words = line.replace(",", "").split()
    return int(words[words.index(status) + 1]) if status in words else 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_holders_claim_is_taken_over(served, monkeypatch):
    from studykit.infra import procs
    from studykit.study import server_claims
    from studykit.tracking.experiment import client

    mlc = client(served["uri"])
    name = server_claims.claim_name("takeover", "k1")
    gone = {"owner_host": procs.hostname(), "owner_pid": str(_dead_pid()), "owner_start": "", "beat": "0"}
    mlc.create_experiment(name, tags=gone)  # a driver on this host died holding it
    with server_claims.claim(served["uri"], "takeover", "k1") as held:
        assert held and mlc.get_experiment_by_name(name).tags["owner_pid"] == str(os.getpid())
    assert mlc.get_experiment_by_name(name) is None  # released
    # Another host's claim: judged only by its heartbeat; taken once the beat stops for the expiry.
    monkeypatch.setenv("STUDYKIT_CLAIM_EXPIRE_S", "3")
    elsewhere = gone | {"owner_host": "a-host-elsewhere", "owner_pid": "1"}
    exp_id = mlc.create_experiment(name, tags=elsewhere)
    stop = threading.Event()

    def beat():  # alive for 2 s, then silent
        for i in range(4):
            mlc.set_experiment_tag(exp_id, "beat", str(i + 1))
            time.sleep(0.5)
        stop.set()

    threading.Thread(target=beat, daemon=True).start()
    waits: list[str] = []
    t0 = time.monotonic()
    with server_claims.claim(served["uri"], "takeover", "k1", on_wait=waits.append) as held:
        assert held and stop.is_set() and time.monotonic() - t0 >= 3
        assert waits == ["a-host-elsewhere pid 1"]
    assert mlc.get_experiment(exp_id).lifecycle_stage == "deleted"


def test_a_cancelled_wait_yields_false_and_leaves_the_holder(served):
    from studykit.study import server_claims
    from studykit.tracking.experiment import client

    mlc = client(served["uri"])
    with server_claims.claim(served["uri"], "cancel", "k") as held:
        assert held
        name = server_claims.claim_name("cancel", "k")
        owner = mlc.get_experiment_by_name(name).experiment_id
        with server_claims.claim(served["uri"], "cancel", "k", cancelled=lambda: True) as second:
            assert second is False
        assert mlc.get_experiment_by_name(name).experiment_id == owner
