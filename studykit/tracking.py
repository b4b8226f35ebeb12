"""MLflow setup, run tags and lookup.

The embedded default store is `sqlite:///<cwd>/mlruns/mlflow.db` with artifacts under `<cwd>/mlruns/artifacts`;
`$MLFLOW_TRACKING_URI`, when set, wins, and an explicit `tracking.uri` in the config wins over both.
One experiment per study. Every run carries the tags of DESIGN.md so `mlflow.search_runs` can group them, and
the owner tags (`owner_host`, `owner_pid`, `owner_start`: the process that writes the run's status) so a run left
RUNNING by a killed process can be told from a live one (`owner_state`).

Guarantee: in this package, the first access to a local sqlite store in a process (which creates or migrates its
tables) happens under the store's file lock (`client`, `connect`), so any number of processes may start on a
fresh store at once (unlocked, two of them crash with `duplicate column name: step`).
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from . import procs
from .config import RunConfig
from .locks import file_lock

TAG_KEYS = ("study", "rq", "claim", "condition", "model", "task", "seed", "alignment", "config_hash", "git_sha")
OWNER_KEYS = ("owner_host", "owner_pid", "owner_start")
_READY: set[str] = set()  # stores this process has opened (under the lock) already


def tracking_uri(uri: str | None = None) -> str:
    """Explicit uri > $MLFLOW_TRACKING_URI > the embedded sqlite store under ./mlruns."""
    if uri:
        return uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path.cwd() / "mlruns"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts beside a local sqlite db (mlruns/artifacts/<experiment>); servers choose their own."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///"):])
    return (db.parent / "artifacts" / name).resolve().as_uri()


@contextmanager
def _store_lock(uri: str):
    """Serialise first use of a local sqlite store: MLflow's table creation and experiment creation race when
    several study workers start on a fresh store (seen as alembic 'expected to match one row' errors)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with file_lock(Path(uri[len("sqlite:///"):]).with_suffix(".lock")):
        yield


def client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient on `tracking_uri(uri)`; the process's first use of the store runs under the store lock."""
    resolved = tracking_uri(uri)
    if resolved in _READY:
        return MlflowClient(resolved)
    with _store_lock(resolved):  # MlflowClient() opens the store: creates or upgrades the tables of a fresh one
        mlc = MlflowClient(resolved)
        mlc.search_experiments(max_results=1)
    _READY.add(resolved)
    return mlc


def connect(uri: str | None = None) -> MlflowClient:
    """`client(uri)`, and the fluent API (mlflow.start_run ...) pointed at the same store."""
    mlc = client(uri)
    mlflow.set_tracking_uri(tracking_uri(uri))
    return mlc


def experiment_id(name: str, uri: str | None = None) -> str:
    """The id of experiment `name`, created (with artifacts beside a local store) when missing."""
    resolved = tracking_uri(uri)
    mlc = connect(resolved)  # takes the store lock itself on first use (the lock is not re-entrant)
    with _store_lock(resolved):
        exp = mlc.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                mlc.restore_experiment(exp.experiment_id)
            return exp.experiment_id
        return mlc.create_experiment(name, artifact_location=_artifact_location(resolved, name))


def experiment_for(cfg: RunConfig) -> str:
    return experiment_id(cfg.tracking.experiment or cfg.study, cfg.tracking.uri)


@lru_cache(maxsize=1)
def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(cfg: RunConfig, alignment: str | None = None) -> dict[str, str]:
    return {
        "study": cfg.study,
        "rq": cfg.rq,
        "claim": cfg.claim,
        "condition": cfg.condition or cfg.claim,
        "model": cfg.model.name,
        "task": cfg.data.task,
        "seed": str(cfg.train.seed),
        "alignment": alignment or "unmeasured",
        "config_hash": cfg.config_hash(),
        "git_sha": git_sha(),
        "mlflow.runName": cfg.run_name(),
    }


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming the process that owns a run (this one by default): host, pid and its start time."""
    pid = pid or os.getpid()
    return {"owner_host": procs.hostname(), "owner_pid": str(pid), "owner_start": procs.start_time(pid) or ""}


def owner_state(tags: dict[str, str]) -> str:
    """"alive" or "gone" for a run owned by a process on this host; "unknown" for another host or a run without
    owner tags (written by older code)."""
    if not tags.get("owner_pid", "").isdigit() or tags.get("owner_host") != procs.hostname():
        return "unknown"
    return "alive" if procs.alive(int(tags["owner_pid"]), tags.get("owner_start") or None) else "gone"


def find_runs(cfg: RunConfig, statuses: tuple[str, ...] | None = ("FINISHED",), uri: str | None = None) -> list[Any]:
    """Runs of this exact config (by config_hash) in its study's experiment, newest first; `statuses=None` = any.
    Never creates anything in the store."""
    client = connect(uri or cfg.tracking.uri)
    exp = client.get_experiment_by_name(cfg.tracking.experiment or cfg.study)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], f"tags.config_hash = '{cfg.config_hash()}'",
                              order_by=["attributes.start_time DESC"])
    return [r for r in runs if statuses is None or r.info.status in statuses]


def find_run(cfg: RunConfig, status: str = "FINISHED") -> str | None:
    runs = find_runs(cfg, (status,))
    return runs[0].info.run_id if runs else None
