"""Reading a study's runs back from MLflow: which runs count, their metric keys, histories and per-problem counts.

Shared by `studykit.analysis.report` (the verdict report) and `studykit.analysis.figures` (plots), so neither imports the other's
internals. The rule for which runs count: a study is its CURRENT cells (the `RunConfig`s its study file expands to);
a run counts only when it is FINISHED and its `config_hash` tag is one of those cells' hashes, and when a cell has
several FINISHED runs the newest (latest start time) wins. A run of an edited config, or of a cell that the study
no longer has, changes nothing. Cells without a FINISHED run are reported as missing, never silently dropped.

Per-problem correct counts come from the `eval_counts/<set>/step_<step>.json` artifacts that the trainer logs at
every evaluation (see `studykit.engine.evaluation.counts_artifact` for the format).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studykit.config.schema import RunConfig
from studykit.engine.evaluation import COUNTS_DIR

TAGS = ("study", "rq", "claim", "condition", "model", "task", "seed", "alignment", "config_hash",
        "code_version", "base_weights")  # the last two: studykit.tracking.provenance (None in runs of older code)
# MLflow forbids "@" in metric names, so `pass@k` is logged under another spelling; accept the usual ones.
PASS_RE = re.compile(r"^eval/(?P<set>.+)/pass(?:@|_at_|_at|_|-|\.|:)(?P<k>\d+)$")
_STEP_RE = re.compile(r"step_(\d+)\.json$")


def client(uri: str | None = None):
    """An MlflowClient on `studykit.tracking.experiment.tracking_uri(uri)` (explicit > $MLFLOW_TRACKING_URI > ./mlruns)."""
    from studykit.tracking.experiment import client as tracking_client

    return tracking_client(uri)


def parse_pass_key(key: str) -> tuple[str, int] | None:
    """(eval set, k) of a pass@k metric name such as `eval/toy/pass_at_4` or `eval/toy/pass@4`; else None."""
    m = PASS_RE.match(key)
    return (m["set"], int(m["k"])) if m else None


def pass_columns(run: pd.Series) -> dict[tuple[str, int], str]:
    """(set, k) -> metric key for the pass@k metrics a run logged (from its `metrics.<key>` columns)."""
    out = {}
    for col in run.index:
        if col.startswith("metrics.") and pd.notna(run[col]) and (parsed := parse_pass_key(col[8:])):
            out[parsed] = col[8:]
    return out


def primary_set(run: pd.Series) -> str | None:
    """Eval-set label used for verdicts: the training task's own set if evaluated, else the first set in params."""
    have = {s for s, k in pass_columns(run) if k == 1}
    task = str(run.get("task") or "").replace(":", "_")
    if task in have:
        return task
    try:
        sets = json.loads(run.get("params.eval.sets") or "[]")
        first = sets[0].get("name") or sets[0]["task"].replace(":", "_")
        if first in have:
            return first
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        pass
    return min(have) if have else None


def pass1_key(run: pd.Series) -> str | None:
    """Metric key of pass@1 on the run's primary eval set."""
    eval_set = primary_set(run)
    return pass_columns(run).get((eval_set, 1)) if eval_set else None


def passmax_key(run: pd.Series) -> tuple[int, str] | None:
    """(k, metric key) of the largest logged pass@k on the run's primary eval set."""
    eval_set = primary_set(run)
    ks = {k: key for (s, k), key in pass_columns(run).items() if s == eval_set}
    return (max(ks), ks[max(ks)]) if ks else None


# ---------------------------------------------------------------------------------------------- which runs count


def finished_runs(experiments: Sequence[str], uri: str | None = None) -> pd.DataFrame:
    """Every FINISHED run of the named experiments: run_id, start_time, the tags as columns, `metrics.<key>`
    (latest values), `params.<key>`. Empty (with the tag columns) when none exists."""
    mlc = client(uri)
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(experiments):
        exp = mlc.get_experiment_by_name(name)
        if exp is None:
            continue
        token = None
        while True:
            page = mlc.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=1000,
                                   page_token=token)
            rows += [_row(r) for r in page]
            token = page.token
            if not token:
                break
    df = pd.DataFrame(rows, columns=None if rows else ["run_id", "start_time", *TAGS])
    for tag in TAGS:
        if tag not in df:
            df[tag] = None
    return df


def _row(run) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run.info.run_id, "start_time": run.info.start_time}
    row.update({t: run.data.tags.get(t) for t in TAGS})
    row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
    row.update({f"params.{k}": v for k, v in run.data.params.items()})
    return row


@dataclass
class Selection:
    """The runs that count for a study's cells, and the cells that have none."""

    runs: pd.DataFrame
    missing: list[str]  # run names (`RunConfig.run_name()`) of cells with no FINISHED run
    n_cells: int


def select_cells(runs: pd.DataFrame, cells: Sequence[RunConfig]) -> Selection:
    """Keep the newest FINISHED run per current cell (matched by `config_hash`); list the cells that have none.
    Pure: `runs` is a `finished_runs` frame."""
    hashes: dict[str, RunConfig] = {}
    for c in cells:  # a cell given twice counts once
        hashes.setdefault(c.config_hash(), c)
    chosen = runs[runs["config_hash"].isin(list(hashes))]
    if len(chosen):
        chosen = chosen.sort_values("start_time", ascending=False, kind="stable").drop_duplicates("config_hash")
        order = {h: i for i, h in enumerate(hashes)}
        chosen = chosen.sort_values("config_hash", key=lambda s: s.map(order), kind="stable")
    have = set(chosen["config_hash"])
    missing = [c.run_name() for h, c in hashes.items() if h not in have]
    return Selection(chosen.reset_index(drop=True), missing, len(hashes))


def experiments_of(cells: Sequence[RunConfig], study: str) -> list[str]:
    """MLflow experiments the cells log to (`tracking.experiment`, else their study); `study` when there are none."""
    names = [c.tracking.experiment or c.study for c in cells]
    return list(dict.fromkeys(names)) or [study]


# ---------------------------------------------------------------------------------------------- what they logged


def histories(runs: pd.DataFrame, uri: str | None = None, keys: list[str] | None = None) -> pd.DataFrame:
    """Long table run_id, key, step, value (+ claim, condition, model, task, seed, rq) for `keys` (default: each
    run's primary `eval/<set>/pass@1`, its largest logged pass@k, and `train/accuracy`)."""
    mlc = client(uri)
    labels = ("claim", "condition", "model", "task", "seed", "rq")
    out: list[dict[str, Any]] = []
    for _, run in runs.iterrows():
        wanted = keys or [k for k in (pass1_key(run), (passmax_key(run) or (0, None))[1], "train/accuracy")
                          if k and f"metrics.{k}" in run.index and pd.notna(run[f"metrics.{k}"])]
        for key in dict.fromkeys(wanted):
            for m in mlc.get_metric_history(run["run_id"], key):
                out.append({"run_id": run["run_id"], "key": key, "step": m.step, "value": m.value,
                            **{t: run.get(t) for t in labels}})
    return pd.DataFrame(out, columns=["run_id", "key", "step", "value", *labels])


@dataclass
class Counts:
    """Per-problem correct counts of one evaluation (one run, eval set and step)."""

    step: int
    n: int
    problem_ids: list[str]
    correct: np.ndarray  # int, aligned with problem_ids


def load_counts(run_id: str, eval_set: str, uri: str | None = None, steps: str = "ends") -> dict[int, Counts]:
    """step -> Counts from the run's `eval_counts/<eval_set>/` artifacts; `steps="ends"` reads only the first and
    the last logged step (what the verdicts need), `"all"` every one. Empty when the run logged none (older code)."""
    mlc = client(uri)
    try:
        files = mlc.list_artifacts(run_id, f"{COUNTS_DIR}/{eval_set}")
    except Exception:  # a store without that folder
        return {}
    by_step = {int(m.group(1)): f.path for f in files if (m := _STEP_RE.search(f.path))}
    if steps == "ends" and by_step:
        by_step = {s: by_step[s] for s in {min(by_step), max(by_step)}}
    out = {}
    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        for step, path in sorted(by_step.items()):
            rec = json.loads(Path(mlc.download_artifacts(run_id, path, tmp)).read_text())
            out[step] = Counts(int(rec["step"]), int(rec["n"]), [str(i) for i in rec["problem_ids"]],
                               np.asarray(rec["correct_counts"], dtype=np.int64))
    return out


@contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bar per counts file (one per run and step would flood a notebook)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
