"""From MLflow runs to the verdict table: does each claim of arXiv 2508.21188 hold on each model x task cell?

`load_runs` reads the FINISHED runs of a study's experiment (tags as columns), `histories` the metric histories
(eval pass@1 curves, true training accuracy), `verdict_table` compares each claim's pass@1 gain with ground-truth
GRPO's gain on the same model/task, and `write_report` writes `reports/<study>/` (verdicts.json, verdicts.md,
figures) and logs it to MLflow as a run tagged `rq=report`.

The rule (thresholds configurable, defaults in `studykit.config.CompareSpec`): per claim x model x task,
delta = mean over seeds of (final pass@1 - step-0 pass@1) on the task's primary eval set; ratio_to_gt = delta /
ground-truth GRPO's delta; holds when ratio >= `holds`, partial when >= `partial`, fails otherwise; when ground
truth itself gains less than `min_effect` the verdict is "n/a (gt flat)". Departure: the paper judges claims by eye
from curves of one seed; the ratio rule and the seed spread are studykit's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from .config import CompareSpec
from .runs import TAGS, client as _client, finished_runs, histories, parse_pass_key, pass1_key, pass_columns  # noqa: F401
from .runs import primary_set  # noqa: F401  (re-exported)

CLAIM_RQS = ("rq1", "rq2", "rq3", "ablation")
RECORD_FIELDS = ("claim", "model", "task", "base_pass1", "delta_pass1_per_seed", "delta_pass1", "peak_delta_pass1",
                 "peak_step", "ratio_to_gt", "verdict")
DIAGNOSTICS = ("train/clip_frac", "train/format_rate", "train/method_share/sum", "train/method_share/count",
               "train/method_share/max", "train/method_share/other")


def load_runs(study: str, uri: str | None = None) -> pd.DataFrame:
    """FINISHED runs of the study's experiment: run_id, the tags as columns, `metrics.<key>` (latest values),
    `params.<key>`. Empty (with the tag columns) when the experiment does not exist."""
    return finished_runs([study], uri)


def _thresholds(thresholds: Any) -> CompareSpec:
    if isinstance(thresholds, CompareSpec):
        return thresholds
    try:
        return CompareSpec.model_validate(thresholds or {})
    except ValidationError as err:
        raise ValueError(f"thresholds: expected keys holds, partial, min_effect (numbers >= 0): {err}") from None


def _label(run: pd.Series) -> str:
    """Claim label of a run: its claim, or `<condition>` (e.g. random@noclip) for ablation runs."""
    return str(run["condition"] if run["rq"] == "ablation" and run.get("condition") else run["claim"])


def _curves(runs: pd.DataFrame, hist: pd.DataFrame) -> dict[str, pd.Series]:
    """run_id -> pass@1 by step on the run's primary eval set."""
    out = {}
    for _, run in runs.iterrows():
        key = pass1_key(run)
        h = hist[(hist["run_id"] == run["run_id"]) & (hist["key"] == key)]
        if len(h):
            out[run["run_id"]] = h.groupby("step")["value"].last().sort_index()
    return out


def _group_stats(group: pd.DataFrame, curves: dict[str, pd.Series]) -> dict[str, Any] | None:
    runs = [(int(r["seed"]) if str(r["seed"]).lstrip("-").isdigit() else r["seed"], curves[r["run_id"]])
            for _, r in group.iterrows() if r["run_id"] in curves]
    if not runs:
        return None
    runs.sort(key=lambda sc: str(sc[0]))
    bases = [float(c.iloc[0]) for _, c in runs]
    deltas = [float(c.iloc[-1] - c.iloc[0]) for _, c in runs]
    mean_curve = pd.concat([c for _, c in runs], axis=1).mean(axis=1) - float(np.mean(bases))
    later = mean_curve[mean_curve.index > mean_curve.index.min()]
    later = later if len(later) else mean_curve
    return {"base_pass1": float(np.mean(bases)), "delta_pass1_per_seed": deltas, "delta_pass1": float(np.mean(deltas)),
            "peak_delta_pass1": float(later.max()), "peak_step": int(later.idxmax())}


def _verdict(row: dict[str, Any], gt_delta: float | None, th: CompareSpec, baseline: str) -> tuple[float, str]:
    if row["claim"] == baseline:
        return 1.0, "baseline"
    if gt_delta is None:
        return math.nan, "n/a (no gt)"
    if gt_delta < th.min_effect or gt_delta <= 0:
        return (row["delta_pass1"] / gt_delta if gt_delta else math.nan), "n/a (gt flat)"
    ratio = row["delta_pass1"] / gt_delta
    return ratio, "holds" if ratio >= th.holds else "partial" if ratio >= th.partial else "fails"


def verdict_table(runs: pd.DataFrame, hist: pd.DataFrame, thresholds: Any = None,
                  baseline: str = "ground_truth") -> pd.DataFrame:
    """One row per claim x model x task (see the module docstring for the rule)."""
    th = _thresholds(thresholds)
    runs = runs[runs["rq"].isin(CLAIM_RQS)].copy()
    cols = [*RECORD_FIELDS, "alignment", *DIAGNOSTICS]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    runs["label"] = runs.apply(_label, axis=1)
    curves = _curves(runs, hist)
    stats: dict[tuple[str, str, str], dict[str, Any]] = {}
    for (label, model, task), group in runs.groupby(["label", "model", "task"], sort=False):
        s = _group_stats(group, curves)
        if s is not None:
            stats[(label, model, task)] = {"claim": label, "model": model, "task": task, **s,
                                           "alignment": _alignment(group), **_diagnostics(group)}
    rows = []
    for (label, model, task), row in stats.items():
        abl = label.partition("@")[2]
        own_base = f"{baseline}@{abl}" if abl else baseline
        gt = stats.get((own_base, model, task)) or stats.get((baseline, model, task))
        row["ratio_to_gt"], row["verdict"] = _verdict(row, gt["delta_pass1"] if gt else None, th, own_base)
        rows.append(row)
    claims = list(dict.fromkeys(r["claim"] for r in rows))

    def order(r: dict[str, Any]) -> tuple:
        name, _, abl = r["claim"].partition("@")
        return (r["model"], r["task"], bool(abl), abl, name != baseline, claims.index(r["claim"]))

    return pd.DataFrame(sorted(rows, key=order), columns=cols)


def _alignment(group: pd.DataFrame) -> str | None:
    vals = [a for a in group["alignment"].dropna() if a and a != "unmeasured"]
    return vals[0] if vals else None


def _diagnostics(group: pd.DataFrame) -> dict[str, float]:
    out = {}
    for key in DIAGNOSTICS:
        col = f"metrics.{key}"
        out[key] = float(group[col].mean()) if col in group and group[col].notna().any() else math.nan
    return out


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """verdicts.json records: exactly RECORD_FIELDS, plus `alignment` when known; NaN becomes null."""
    out = []
    for _, row in table.iterrows():
        rec = {k: _clean(row[k]) for k in RECORD_FIELDS}
        if isinstance(row.get("alignment"), str):
            rec["alignment"] = row["alignment"]
        out.append(rec)
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else round(float(v), 4)
    return v.item() if isinstance(v, np.generic) else v


def rule_text(thresholds: Any = None) -> str:
    th = _thresholds(thresholds)
    return (f"Rule: delta = final pass@1 - step-0 pass@1 on the primary eval set, mean over seeds; ratio_to_gt = "
            f"delta / ground-truth GRPO's delta on the same model and task. **holds** if ratio >= {th.holds}, "
            f"**partial** if ratio >= {th.partial}, **fails** otherwise; **n/a (gt flat)** when ground truth gains "
            f"less than {th.min_effect}.")


def _fmt(v: Any, signed: bool = False) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x, signed) for x in v) + "]"
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:+.3f}" if signed else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def _explain(row: pd.Series) -> str:
    diag = ", ".join(f"{k.split('/', 1)[1]}={row[k]:.2f}" for k in DIAGNOSTICS if not math.isnan(row[k]))
    return (f"- **{row['claim']}** on {row['model']} / {row['task']} ({row.get('alignment') or 'alignment unmeasured'})"
            f" {row['verdict']}: pass@1 moved {row['delta_pass1']:+.3f} against ground truth's "
            f"{row['delta_pass1'] / row['ratio_to_gt'] if row['ratio_to_gt'] else float('nan'):+.3f}"
            f" (ratio {row['ratio_to_gt']:.2f}); diagnostics: {diag or 'none logged'}.")


def markdown(table: pd.DataFrame, thresholds: Any = None) -> str:
    cols = ["claim", "model", "task", "alignment", "base_pass1", "delta_pass1", "delta_pass1_per_seed",
            "peak_delta_pass1", "peak_step", "ratio_to_gt", "verdict"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(row[c], "delta" in c) for c in cols) + " |" for _, row in table.iterrows()]
    misses = [_explain(row) for _, row in table.iterrows() if row["verdict"] in ("fails", "partial")]
    body = "\n".join(lines) + "\n\n" + rule_text(thresholds) + "\n"
    if misses:
        body += "\n### Claims that did not reproduce\n\n" + "\n".join(misses) + "\n"
    return body


@dataclass
class Report:
    study: str
    table: pd.DataFrame
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    run_id: str | None = None


def write_report(study: str, uri: str | None = None, thresholds: Any = None, out_dir: str | Path = "reports",
                 log_to_mlflow: bool = True, figures: bool = True) -> Report:
    """Write reports/<study>/{verdicts.json, verdicts.md, *.png}; log them as an `rq=report` MLflow run."""
    runs = load_runs(study, uri)
    if runs.empty:
        raise ValueError(f"study {study!r}: no FINISHED runs in experiment {study!r} at {uri or 'the default store'}")
    hist = histories(runs[runs["rq"].isin(CLAIM_RQS)], uri)
    table = verdict_table(runs, hist, thresholds)
    folder = Path(out_dir) / study
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "verdicts.json", folder / "verdicts.md"]
    files[0].write_text(json.dumps(records(table), indent=2))
    files[1].write_text(f"# Verdicts: study `{study}`\n\n" + markdown(table, thresholds))
    if figures:
        from . import figures as figs

        files += figs.report_figures(runs, hist, table, folder)
    report = Report(study, table, folder, files)
    if log_to_mlflow:
        report.run_id = _log_report(study, uri, folder, table)
    return report


def _log_report(study: str, uri: str | None, folder: Path, table: pd.DataFrame) -> str:
    client = _client(uri)
    exp = client.get_experiment_by_name(study)
    run = client.create_run(exp.experiment_id, run_name=f"report-{study}", tags={"study": study, "rq": "report"})
    counts = table["verdict"].value_counts()
    for verdict in ("holds", "partial", "fails"):
        client.log_metric(run.info.run_id, f"report/{verdict}", float(counts.get(verdict, 0)))
    client.log_artifacts(run.info.run_id, str(folder), artifact_path="report")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def run_summary(run_id: str, uri: str | None = None) -> dict[str, Any]:
    """Tags, params (`params.<k>`) and latest metrics (`metrics.<k>`) of one run, as one flat dict."""
    run = _client(uri).get_run(run_id)
    out: dict[str, Any] = dict(run.data.tags)
    out.update({f"params.{k}": v for k, v in run.data.params.items()})
    out.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
    return out
