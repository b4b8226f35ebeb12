"""The study's experiment, its runs' names, tags and owners, and lookups by config (the store handle itself,
`tracking_uri` and `client`, is `studykit.infra.store`, re-exported here).

The embedded default store is `sqlite:///<cwd>/mlruns/mlflow.db` with artifacts under `<cwd>/mlruns/artifacts`;
`$MLFLOW_TRACKING_URI`, when set, wins, and an explicit `tracking.uri` in the config wins over both.
One experiment per study, tagged `mlflow.experimentKind=custom_model_development` (MLflow 3's UI opens such an
experiment on its training runs, not on the GenAI traces overview). Every run carries the tags of DESIGN.md so
`mlflow.search_runs` can group them, a readable name (`display_name`: `rq1 random | toy:strong | toy | s0`), a
`group` tag shared by the seeds of one condition x model x task (the UI's group-by), its notebook as source, its
study's parent run (`study_run`) as `mlflow.parentRunId` when it is a study cell, and the owner tags (`owner_host`, `owner_pid`, `owner_start`: the process that writes the run's status) so a run left
RUNNING by a killed process can be told from a live one (`owner_state`).

Guarantee: in this package, the first access to a local sqlite store in a process (which creates or migrates its
tables) happens under the store's file lock (`client`, `connect`), so any number of processes may start on a
fresh store at once (unlocked, two of them crash with `duplicate column name: step`).
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from studykit.config.schema import RunConfig
from studykit.infra import procs
from studykit.infra.store import _artifact_location, _store_lock, client, connect, tracking_uri  # noqa: F401 (public here too)

# MLflow 3's UI reads this experiment tag to choose the experiment's landing view (mlflow/server/js: the values
# `genai_development` -> traces overview, `custom_model_development` -> the runs table, "Machine learning").
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
STUDY_RQ = "study"  # the `rq` tag of a study's parent run: no config_hash, so the analysis never counts it
TAG_KEYS = ("study", "rq", "claim", "condition", "model", "task", "seed", "alignment", "config_hash", "git_sha")
OWNER_KEYS = ("owner_host", "owner_pid", "owner_start")


def experiment_id(name: str, uri: str | None = None) -> str:
    """The id of experiment `name`, created (with artifacts beside a local store) when missing."""
    resolved = tracking_uri(uri)
    mlc = connect(resolved)  # takes the store lock itself on first use (the lock is not re-entrant)
    with _store_lock(resolved):
        exp = mlc.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                mlc.restore_experiment(exp.experiment_id)
            if "mlflow.experimentKind" not in exp.tags:  # an experiment made by older code; a user's choice stays
                mlc.set_experiment_tag(exp.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
            return exp.experiment_id
        try:
            return mlc.create_experiment(name, artifact_location=_artifact_location(resolved, name),
                                         tags=EXPERIMENT_KIND)
        except MlflowException as err:  # on a server, another driver created it just now
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return mlc.get_experiment_by_name(name).experiment_id


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
        "model": cfg.model.shown,
        "task": cfg.data.task,
        "seed": str(cfg.train.seed),
        "alignment": alignment or "unmeasured",
        "config_hash": cfg.config_hash(),
        "git_sha": git_sha(),
        "group": group_name(cfg),
        "mlflow.runName": display_name(cfg),
    } | {f"plugin.{kind}": identity for kind, identity in cfg.plugins().items()} | context_tags(cfg)


def group_name(cfg: RunConfig) -> str:
    """What the seeds of one cell share: `rq1 random | toy:strong | toy` (`alignment | toy:strong | toy`)."""
    head = "alignment" if cfg.rq == "alignment" else f"{cfg.rq} {cfg.condition or cfg.claim}"
    return f"{head} | {cfg.model.shown} | {cfg.data.task}"


def display_name(cfg: RunConfig) -> str:
    """The run's name in the UI: its group and seed, `rq1 random | toy:strong | toy | s0`. Unique within a study: a
    study's cells differ in rq, condition (ablations carry `@<ablation>`), model, task or seed."""
    return group_name(cfg) if cfg.rq == "alignment" else f"{group_name(cfg)} | s{cfg.train.seed}"


def context_tags(cfg: RunConfig) -> dict[str, str]:
    """Where the run comes from: its notebook (`mlflow.source.*`) and its study's parent run; set at start and again
    on resume, so a resumed cell keeps (or gets) its parent."""
    tags = {}
    if cfg.tracking.source_name:
        tags |= {"mlflow.source.name": cfg.tracking.source_name, "mlflow.source.type": "NOTEBOOK"}
    if cfg.tracking.parent_run:
        tags["mlflow.parentRunId"] = cfg.tracking.parent_run
    if cfg.tracking.claim:  # the study driver that runs this cell now (studykit.study.claims.conclude)
        tags["claim_token"] = cfg.tracking.claim
    return tags


def problems_frame(problems: list[Any]):
    """A pandas frame of problems (id, prompt, answer): what a dataset input records and digests."""
    import pandas as pd

    return pd.DataFrame({"id": [str(p.id) for p in problems], "prompt": [p.prompt for p in problems],
                         "answer": [str(p.answer) for p in problems]})


def set_name(label: str, task: str, split: str, limit: int | None = None) -> str:
    """A problem set's dataset name: `toy (toy/test[:128])`; the first word is the eval-set label."""
    return f"{label} ({task}/{split}{f'[:{limit}]' if limit else ''})"


def log_problem_sets(train: tuple[str, list[Any]] | None, evals: list[tuple[str, list[Any]]]) -> None:
    """Log the training set (context `training`) and each eval set (`eval/<label>`, the label being the first word
    of its `set_name`) of the active run as MLflow dataset inputs, with a digest of their contents, so identical sets are one dataset in the store
    and the UI's Datasets column says what the run trained and was evaluated on."""
    import mlflow.data

    items = ([("training", *train)] if train else []) + [(f"eval/{name.split(' ')[0]}", name, probs)
                                                         for name, probs in evals]
    for context, name, probs in items:
        ds = mlflow.data.from_pandas(problems_frame(probs), name=name, targets="answer")
        mlflow.log_input(ds, context=context)


def study_run(study: str, experiment: str | None = None, uri: str | None = None) -> str:
    """The id of the study's parent run (tag `rq=study`) in its experiment, created once: a rerun of the study, its
    compare step and `studykit report` all find the same run (found and created under the store lock). A new one
    is RUNNING; its status is the study runner's to set."""
    resolved = tracking_uri(uri)
    exp = experiment_id(experiment or study, resolved)
    mlc = client(resolved)
    with _store_lock(resolved):
        found = mlc.search_runs([exp], f"tags.rq = '{STUDY_RQ}' and tags.study = '{study}'",
                                order_by=["attributes.start_time ASC"], max_results=1)
        if found:
            return found[0].info.run_id
        return mlc.create_run(exp, run_name=f"study {study}", tags={
            "study": study, "rq": STUDY_RQ, "mlflow.source.name": "studykit study", "mlflow.source.type": "LOCAL",
            "mlflow.note.content": f"Study `{study}`: its cells are the child runs; the verdict table, figures and "
                                   "report of the compare step are this run's `report/` artifacts."}).info.run_id


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
