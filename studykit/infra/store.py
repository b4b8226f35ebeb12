"""The MLflow store handle: which store a process talks to (`tracking_uri`) and a client whose first use of a
local sqlite store runs under the store's file lock (`client`, `connect`).

The embedded default store is `sqlite:///<cwd>/mlruns/mlflow.db` with artifacts under `<cwd>/mlruns/artifacts`;
`$MLFLOW_TRACKING_URI`, when set, wins, and an explicit uri wins over both. It lives at the bottom of the house
because the policy layer reads and writes stored policies through it; run naming and tags (which need the
config) are `studykit.tracking`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from studykit.infra.locks import file_lock

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
