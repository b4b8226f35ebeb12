"""MLflow setup: URI precedence, artifacts beside the store, and several workers starting on a fresh store."""

from __future__ import annotations

import subprocess
import sys
from studykit import tracking
from studykit.config import validate

_WORKER = """
import sys
from studykit import tracking
print(tracking.experiment_id("race", sys.argv[1]))
"""


def test_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert tracking.tracking_uri() == "sqlite:////elsewhere.db"
    assert tracking.tracking_uri("sqlite:////explicit.db") == "sqlite:////explicit.db"


def test_artifacts_live_beside_a_local_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = tracking.connect(uri).get_experiment(tracking.experiment_id("study-x", uri))
    assert exp.artifact_location == (tmp_path / "artifacts" / "study-x").as_uri()


def test_workers_starting_on_a_fresh_store_do_not_collide(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1


def test_run_tags_cover_the_design_card():
    tags = tracking.run_tags(validate({"study": "s", "rq": "rq1", "claim": "random", "model": {"name": "toy:strong"}}))
    assert set(tracking.TAG_KEYS) <= set(tags)
    assert tags["condition"] == "random" and tags["model"] == "toy:strong" and tags["seed"] == "0"
    assert len(tags["config_hash"]) == 12
