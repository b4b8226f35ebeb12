"""From MLflow runs to the verdict report of a study: reports/<study>/ and an `rq=report` MLflow run.

`write_report(study, cells, ...)` reads the runs of the study's CURRENT cells (the `RunConfig`s its study file
expands to; `studykit.analysis.runs` for the selection rule: FINISHED, matched by `config_hash`, newest per cell), their
metric histories and their per-problem counts artifacts, builds the verdict table (`studykit.analysis.verdicts`, where the
rule, the seed pairing, the bootstrap intervals and the departures from the paper are documented), and writes:

- `verdicts.json`: {"study", "rule", "thresholds", "bootstrap": {"n_boot", "alpha", "seed", "resample"},
  "cells": number of cells, "runs": number of runs used, "missing": {"count", "cells": [run names]},
  "provenance": {"mixed": [rows], "unknown": [rows]} (`claim | model | task` of the rows whose runs differ in code
  version or base weights, or lack those tags: studykit.tracking.provenance),
  "records": [one record per claim x model x task with `verdicts.RECORD_FIELDS`], "claims": [the claim cards'
  prediction checks per row: `studykit.analysis.claim_cards.checks`]};
- `verdicts.md`: the same table in markdown, the rule, the cells with no FINISHED run ("missing: N cells: ..."),
  the claims that did not clearly reproduce, notes;
- figures (`studykit.analysis.figures.report_figures`): alignment pass@k, training accuracy, the ratio heatmap with its
  intervals, and pass@k before and after training of the RQ3 claims and ground truth;
- `thresholds.json/.md`, `alignment_curve.png` when a task has three or more models (`studykit.analysis.curve`);
- `shares.json/.md` when the task logs diagnostic shares: each claim's final method mix per seed
  (`studykit.analysis.shares`);

and logs the folder into the study's parent run (`tracking.study_run`, tag `rq=study`; the cells are its children)
as `report/` artifacts with metrics `report/<verdict>` counts and `report/missing`. A parent run that no live
process owns (made here, or left by a killed study) is marked FINISHED; a running study's stays its own.
This module reads MLflow; it never imports the study layer (studykit.study.spec, study_runner, cli): the caller expands
the study file and passes the cells.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from studykit.analysis import claim_cards, shares
from studykit.config.schema import ClaimCard, RunConfig
from studykit.analysis.runs import (
    Counts,
    Selection,
    client,
    experiments_of,
    finished_runs,
    histories,
    load_counts,
    parse_pass_key,
    pass_columns,
    primary_set,
    select_cells,
)
from studykit.analysis.verdict_text import markdown, records, rule_text
from studykit.analysis.verdicts import (  # noqa: F401 (CLAIM_RQS, RECORD_FIELDS: public here too)
    CLAIM_RQS,
    RECORD_FIELDS,
    thresholds_of,
    verdict_table,
)

N_BOOT = 2000
ALPHA = 0.05


def load_runs(study: str, cells: Sequence[RunConfig], uri: str | None = None) -> Selection:
    """The runs that count for the study's cells (see studykit.analysis.runs) and the cells that have none."""
    if not cells:
        raise ValueError(f"study {study!r}: no cells given (expand the study file and pass [c.config for c in cells])")
    return select_cells(finished_runs(experiments_of(cells, study), uri), cells)


def load_all_counts(runs: pd.DataFrame, uri: str | None = None) -> dict[str, dict[int, Counts]]:
    """run_id -> step -> Counts on each claim run's primary eval set (first and last logged step only)."""
    out = {}
    for _, run in runs[runs["rq"].isin(CLAIM_RQS)].iterrows():
        eval_set = primary_set(run)
        if eval_set:
            out[run["run_id"]] = load_counts(run["run_id"], eval_set, uri)
    return out


@dataclass
class Report:
    study: str
    table: pd.DataFrame
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None
    missing: list[str] = field(default_factory=list)
    n_cells: int = 0


def _missing_text(missing: list[str], n_cells: int) -> str:
    if not missing:
        return f"All {n_cells} cells have a FINISHED run.\n"
    return f"**missing: {len(missing)} of {n_cells} cells have no FINISHED run:** {', '.join(missing)}\n"


def write_report(study: str, cells: Sequence[RunConfig], uri: str | None = None, thresholds: Any = None,
                 out_dir: str | Path = "reports", log_to_mlflow: bool = True, figures: bool = True,
                 n_boot: int = N_BOOT, seed: int = 0, cards: Mapping[str, ClaimCard] | None = None) -> Report:
    """Write reports/<study>/{verdicts.json, verdicts.md, *.png} for the study's current `cells` (RunConfigs) and
    log them as an `rq=report` MLflow run; see the module docstring."""
    th = thresholds_of(thresholds)
    sel = load_runs(study, cells, uri)
    if sel.runs.empty:
        raise ValueError(f"study {study!r}: none of its {sel.n_cells} cells has a FINISHED run in experiment(s) "
                         f"{experiments_of(cells, study)} at {uri or 'the default store'}: run the study first "
                         f"(`studykit study <its study file>`), or point `uri` at the store it ran in")
    runs = sel.runs
    claim_runs = runs[runs["rq"].isin(CLAIM_RQS)]
    hist = histories(claim_runs, uri)
    counts = load_all_counts(claim_runs, uri)
    table = verdict_table(runs, hist, counts, th, n_boot=n_boot, alpha=ALPHA, seed=seed)
    folder = Path(out_dir) / study
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"study": study, "rule": rule_text(th, n_boot, ALPHA), "thresholds": th.model_dump(exclude={"axes"}),
            "bootstrap": {"n_boot": n_boot, "alpha": ALPHA, "seed": seed,
                          "resample": "problems (the same problems for claim and ground truth) plus a seed layer "
                                      "(Student t, n_seeds - 1 degrees of freedom); none for one seed"},
            "cells": sel.n_cells, "runs": int(len(runs)),
            "missing": {"count": len(sel.missing), "cells": sel.missing},
            "provenance": {state: [f"{r['claim']} | {r['model']} | {r['task']}" for _, r in table.iterrows()
                                   if r["provenance"] == state] for state in ("mixed", "unknown")},
            "records": records(table), "claims": claim_cards.checks(table, cards)}
    files = [folder / "verdicts.json", folder / "verdicts.md"]
    files[0].write_text(json.dumps(meta, indent=2))
    files[1].write_text(f"# Verdicts: study `{study}`\n\n{_missing_text(sel.missing, sel.n_cells)}\n"
                        + markdown(table, th, n_boot, ALPHA) + _cards_section(table, cards))
    if figures:
        from studykit.analysis import figures as figs

        files += figs.report_figures(runs, hist, table, folder, counts)
    files += _curve(runs, hist, counts, th, folder, n_boot, seed, figures)
    files += shares.write(runs, folder)
    report = Report(study, table, folder, files, missing=sel.missing, n_cells=sel.n_cells)
    if log_to_mlflow:
        report.run_id = _log_report(study, [study, *experiments_of(cells, study)], uri, folder, table,
                                    len(sel.missing))
    return report


def _cards_section(table: pd.DataFrame, cards: Mapping[str, ClaimCard] | None) -> str:
    section = claim_cards.markdown(table, cards)
    return f"\n{section}" if section else ""


def _curve(runs, hist, counts, th, folder: Path, n_boot: int, seed: int, figures: bool) -> list[Path]:
    """thresholds.json / .md and alignment_curve.png when a task has three or more models (studykit.analysis.curve)."""
    from studykit.analysis import curve

    rows, agreements = curve.alignment_curve(runs, hist, counts, th, th.axes, n_boot=min(n_boot, 1000), seed=seed)
    for stale in ("thresholds.json", "thresholds.md", "alignment_curve.png"):  # a grid that lost its curve
        (folder / stale).unlink(missing_ok=True)
    return curve.write(rows, agreements, folder, figure=figures)


def _log_report(study: str, experiments: list[str], uri: str | None, folder: Path, table: pd.DataFrame,
                missing: int) -> str:
    """Log the report folder into the study's parent run, in the first of `experiments` that exists."""
    from studykit.tracking.experiment import owner_state, study_run

    mlc = client(uri)
    exp = next(e for e in map(mlc.get_experiment_by_name, experiments) if e is not None)
    run_id = study_run(study, exp.name, uri)
    counts = table["verdict"].value_counts()
    values = {f"report/{v}": float(counts.get(v, 0)) for v in ("holds", "partial", "fails")}
    values["report/uncertain"] = float(table["verdict"].str.startswith("uncertain").sum())  # `uncertain (1 seed)` too
    values |= {"report/n_a": float(table["verdict"].str.startswith("n/a").sum()), "report/missing": float(missing),
               "report/mixed_provenance": float((table["provenance"] == "mixed").sum())}
    for key, value in values.items():
        mlc.log_metric(run_id, key, value)
    mlc.log_artifacts(run_id, str(folder), artifact_path="report")
    run = mlc.get_run(run_id)
    # Close only a parent left RUNNING (made by this report, or by a study process that is gone): a FAILED or
    # KILLED study stays what its runner marked it, however often it is reported.
    if run.info.status == "RUNNING" and owner_state(run.data.tags) != "alive":
        mlc.set_terminated(run_id, "FINISHED")
    return run_id


def run_summary(run_id: str, uri: str | None = None) -> dict[str, Any]:
    """Tags, params (`params.<k>`) and latest metrics (`metrics.<k>`) of one run, as one flat dict."""
    run = client(uri).get_run(run_id)
    out: dict[str, Any] = dict(run.data.tags)
    out.update({f"params.{k}": v for k, v in run.data.params.items()})
    out.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
    return out
