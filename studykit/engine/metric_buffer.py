"""Training metrics held in memory between checkpoints, so a resumed run's history has each step exactly once.

The trainer adds its metrics here instead of logging them; `flush` writes them (MlflowClient.log_batch) right after
each checkpoint is saved and at the end. The checkpoint carries the metrics not flushed yet (`state()`), so a kill
between the save and the flush loses nothing: on resume `replay` logs those the run does not have yet (matched by
key and step). Metrics of the steps after the last checkpoint belong to an attempt that the resumed run recomputes,
so they are dropped with it and never logged: every logged value comes from the attempt the run continued from.
The price: the live history in the MLflow UI moves at checkpoints (`train.checkpoint_every`), not at every step.
"""

from __future__ import annotations

import time
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

BATCH = 1000  # MLflow's limit of metrics per log_batch call


class MetricBuffer:
    def __init__(self, items: list[list[Any]] | None = None) -> None:
        self.items: list[list[Any]] = list(items or [])  # [key, value, timestamp_ms, step]

    def add(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.items += [[k, float(v), now, int(step)] for k, v in metrics.items()]

    def state(self) -> list[list[Any]]:
        """What a checkpoint keeps: the metrics not flushed yet."""
        return [list(i) for i in self.items]

    def flush(self, run_id: str) -> None:
        _log(MlflowClient(), run_id, self.items)
        self.items = []


def replay(run_id: str, items: list[list[Any]]) -> int:
    """Log the checkpoint's unflushed metrics that run `run_id` lacks (by key and step); returns how many."""
    client = MlflowClient()
    have = {(k, m.step) for k in {i[0] for i in items} for m in client.get_metric_history(run_id, k)}
    missing = [i for i in items if (i[0], i[3]) not in have]
    _log(client, run_id, missing)
    return len(missing)


def _log(client: MlflowClient, run_id: str, items: list[list[Any]]) -> None:
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in items]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + BATCH])
