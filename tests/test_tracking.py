"""MLflow setup: URI precedence, artifacts beside the store, and several workers starting on a fresh store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studykit.tracking import experiment as tracking
from studykit.config.schema import validate

_WORKER = """
import sys
from studykit import tracking
print(tracking.experiment_id("race", sys.argv[1]))
"""

# What `studykit study` does first: look for finished runs (a read, but the first store access creates the tables)
_READER = """
import sys
from studykit import tracking
from studykit.config.schema import validate
cfg = validate({"study": "s", "rq": "rq1", "claim": "random", "tracking": {"uri": sys.argv[1]}})
print(len(tracking.find_runs(cfg, None)))
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


@pytest.mark.parametrize("script", [_WORKER, _READER], ids=["create-experiment", "first-access-is-a-read"])
def test_workers_starting_on_a_fresh_store_do_not_collide(tmp_path, script):
    # Regression: a first access outside the store lock crashed with `duplicate column name: step`.
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1


def test_owner_tags_tell_a_live_owner_from_a_gone_one():
    mine = tracking.owner_tags()
    assert mine["owner_pid"] == str(os.getpid()) and tracking.owner_state(mine) == "alive"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    tags = tracking.owner_tags(child.pid)
    child.wait()
    assert tracking.owner_state(tags) == "gone"
    assert tracking.owner_state(mine | {"owner_start": "1"}) == "gone"  # the pid was reused by another process
    assert tracking.owner_state(mine | {"owner_host": "elsewhere"}) == "unknown"
    assert tracking.owner_state({}) == "unknown"


def test_run_tags_cover_the_design_card():
    tags = tracking.run_tags(validate({"study": "s", "rq": "rq1", "claim": "random", "model": {"name": "toy:strong"}}))
    assert set(tracking.TAG_KEYS) <= set(tags)
    assert tags["condition"] == "random" and tags["model"] == "toy:strong" and tags["seed"] == "0"
    assert len(tags["config_hash"]) == 12
