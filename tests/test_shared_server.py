"""Several study drivers and users sharing one `studykit server --auth` (loopback, a free port, logins on).

Claims live on the server, so two `studykit study` processes started from two folders (two machines, in effect), as
two users, run each cell once, never end or write a run they do not own, and both exit 0; a dead holder's claim is
taken over (its process gone on this host, or its heartbeat stopped on another). Logins: an unauthenticated write is
refused (401), a wrong password fails the study before any cell runs, the Host-header allow list takes the names
given. Cells are fake notebooks (a run that lasts a few seconds): no training, no toy build. One server for the
module; about a minute on a loaded 2-core machine (slow)."""

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


ADMIN_PASSWORD = "admin-secret-0123456789"
USERS = {"alice": "alice-secret-0123", "bob": "bob-secret-012345"}
ALLOWED = "studykit-test.example"


def _api(uri: str, method: str, path: str, auth=None, host: str | None = None, **kw):
    import requests

    headers = {"Host": host} if host else {}
    return requests.request(method, f"{uri}/api/2.0/mlflow/{path}", auth=auth, headers=headers, timeout=30, **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("server")
    secret = work / "admin-password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    secret.chmod(0o600)
    proc, uri = start_server(work, "--auth", "--admin-password-file", str(secret), "--allowed-hosts", ALLOWED)
    try:
        for user, password in USERS.items():
            r = _api(uri, "POST", "users/create", auth=("admin", ADMIN_PASSWORD),
                     json={"username": user, "password": password})
            assert r.status_code == 200, r.text
        yield {"work": work, "uri": uri}
    finally:
        stop_server(proc, uri)


@pytest.fixture
def as_alice(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])


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


def _driver(folder: Path, uri: str, ledger: Path, user: str) -> subprocess.Popen:
    folder.mkdir()
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, STUDYKIT_TEST_DRIVER=folder.name, STUDYKIT_TEST_LEDGER=str(ledger),
               OMP_NUM_THREADS="1", STUDYKIT_WARM_KERNELS="0", MLFLOW_TRACKING_USERNAME=user,
               MLFLOW_TRACKING_PASSWORD=USERS[user])
    log = open(folder / "cli.log", "w")
    return subprocess.Popen([sys.executable, "-m", "studykit.cli.commands", "study", str(_study(folder)),
                             "--workers", "2"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def test_two_drivers_in_two_folders_run_each_cell_once(served, tmp_path, as_alice):
    from mlflow.tracking import MlflowClient

    ledger = tmp_path / "ledger.jsonl"
    drivers = {name: _driver(tmp_path / name, served["uri"], ledger, user)
               for name, user in (("a", "alice"), ("b", "bob"))}
    codes = {name: p.wait(timeout=600) for name, p in drivers.items()}
    logs = {name: (tmp_path / name / "cli.log").read_text() for name in drivers}
    assert codes == {"a": 0, "b": 0}, {n: log[-3000:] for n, log in logs.items()}
    ran = [json.loads(line) for line in ledger.read_text().splitlines()]
    hashes = [r["hash"] for r in ran]
    assert len(hashes) == 4 and len(set(hashes)) == 4, f"a cell ran twice: {ran}"
    client = MlflowClient(served["uri"])
    exp = client.get_experiment_by_name("shared")
    runs = client.search_runs([exp.experiment_id], "")
    cells = [r for r in runs if r.data.tags.get("config_hash")]
    (parent,) = [r for r in runs if r.data.tags.get("rq") == "study"]  # one parent run, made by one of them
    assert parent.info.status == "FINISHED", parent.data.tags.get("status_reason")
    assert len(cells) == 4 and {r.data.tags["config_hash"] for r in cells} == set(hashes)
    for run in cells:
        assert run.info.status == "FINISHED" and "status_reason" not in run.data.tags, run  # nobody marked it
        notebooks = [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
        assert len(notebooks) == 1, notebooks  # its own driver's notebook only
        driver = run.data.tags["driver"]  # the driver that ran it has the executed notebook naming the run
        tags = run.data.tags
        nb = next((tmp_path / driver / "outputs/shared").glob(f"*{tags['condition']}*s{tags['seed']}*.ipynb"))
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


def test_a_dead_holders_claim_is_taken_over(served, monkeypatch, as_alice):
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


def test_a_cancelled_wait_yields_false_and_leaves_the_holder(served, as_alice):
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


def test_an_unauthenticated_write_is_refused(served):
    assert _api(served["uri"], "POST", "experiments/create", json={"name": "anonymous"}).status_code == 401
    assert _api(served["uri"], "POST", "experiments/create", auth=("alice", "wrong-password-000"),
                json={"name": "anonymous"}).status_code == 401
    assert _api(served["uri"], "GET", "experiments/get-by-name", auth=("admin", ADMIN_PASSWORD),
                params={"experiment_name": "anonymous"}).status_code == 404  # nothing was created


def test_a_wrong_password_fails_the_study_before_any_cell(served, tmp_path, monkeypatch, capsys):
    from studykit.cli import commands as cli
    from studykit.tracking.server_auth import LoginError
    from studykit.study.runner import run_study

    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("STUDYKIT_TEST_LEDGER", str(ledger))
    monkeypatch.setenv("STUDYKIT_TEST_DRIVER", "wrong")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-alices-password")
    study = _study(tmp_path)
    with pytest.raises(LoginError, match="refused the login of user 'alice': wrong user name or password"):
        run_study(study, uri=served["uri"], progress=False)
    assert cli.main(["study", str(study), "--tracking-uri", served["uri"]]) == 2
    assert "refused the login of user 'alice'" in capsys.readouterr().err
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(LoginError, match="needs a login: set MLFLOW_TRACKING_USERNAME"):
        run_study(study, uri=served["uri"], progress=False)
    assert not ledger.exists() and not (tmp_path / "outputs").exists()  # no cell ran, nothing was written


def test_the_allowed_hosts_take_the_names_given(served):
    port = served["uri"].rsplit(":", 1)[1]
    admin = ("admin", ADMIN_PASSWORD)
    codes = {host: _api(served["uri"], "GET", "experiments/search", auth=admin, host=f"{host}:{port}",
                        params={"max_results": 1}).status_code
             for host in ("localhost", "127.0.0.1", ALLOWED, "not-allowed.example")}
    assert codes == {"localhost": 200, "127.0.0.1": 200, ALLOWED: 200, "not-allowed.example": 403}, codes
