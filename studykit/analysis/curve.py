"""The alignment curve of a study: each claim's gain ratio against the measured alignment of its models, where it
turns on (`thresholds.json`, `thresholds.md`) and the figure (`alignment_curve.png`).

Any study whose grid has three or more models with an alignment run on one task gets it (toy levels on a dial, or a
user's checkpoints of several sizes). The models form one series per named axis (`compare.axes` in the study file:
axis -> grid model keys), else one series of all of them. For each claim x task x series x alignment measure, the
levels are `studykit.analysis.thresholds.Level`s built from the same runs and the same per-problem pass@1 deltas,
paired seed by seed with ground truth, as the verdict table (`studykit.analysis.verdicts`); the crossing of the
study's `holds` and `partial` thresholds is estimated there. A level enters a crossing when ground truth gained on
it (a ratio exists) and it has two or more paired seeds. Measures, from each model's alignment run:
`pass@1`, `pass@k` (k of its alignment label, else the largest logged), `pass@k area` (the curve's normalised area
against log2 k), and `maj@n` (the share of problems whose most frequent answer among n samples is right: the
quantity a self-reward's label depends on) where the alignment run logged it. The rank agreement of a measure with
the ratios is given from ten levels on (with fewer, resampling levels gives an interval that undercovers a
near-perfect agreement: see MIN_RANK_LEVELS). Reads nothing itself: `studykit.analysis.report` passes the runs and
counts.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studykit.analysis import thresholds as th_mod
from studykit.analysis.runs import Counts, pass_columns, primary_set
from studykit.analysis.verdicts import CLAIM_RQS, _common_ids, _evidence, _seeds, label
from studykit.scoring import metrics

MEASURES = ("pass@1", "pass@k", "pass@k area", "maj@n")  # maj@n: only where the alignment run logged it
MIN_LEVELS = 3
MIN_RANK_LEVELS = 10  # the level bootstrap's 95% interval covered 0.92-0.98 at 10 levels but 0.68-0.79 at 6-8 when the
# true agreement is near-perfect (coverage simulation in tests/test_thresholds.py and the note of issue 23)
_ALIGN_K = re.compile(r"pass@(\d+)=")
_MAJ = re.compile(r"^metrics\.eval/(?P<set>.+)/maj(?:_at)?_(?P<n>\d+)$")  # evaluation.metric_key


def alignment_measures(runs: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(model, task) -> {measure: value} from each model's newest alignment run on its primary eval set."""
    align = runs[runs["rq"] == "alignment"]
    if "start_time" in align:
        align = align.sort_values("start_time", kind="stable")
    out: dict[tuple[str, str], dict[str, float]] = {}
    for _, run in align.iterrows():
        eval_set = primary_set(run)
        curve = {k: float(run[f"metrics.{key}"]) for (s, k), key in pass_columns(run).items() if s == eval_set}
        if 1 not in curve:
            continue
        m = _ALIGN_K.search(str(run.get("alignment") or ""))
        k = int(m[1]) if m and int(m[1]) in curve else max(curve)
        found = {"pass@1": curve[1], "pass@k": curve[k], "k": float(k), "pass@k area": th_mod.pass_at_k_area(curve)}
        maj = {int(m["n"]): c for c in run.index
               if (m := _MAJ.match(c)) and m["set"] == eval_set and pd.notna(run[c])}
        if maj:  # the largest n logged: is the base model's most frequent answer right?
            found["maj@n"] = float(run[maj[max(maj)]])
        out[(run["model"], run["task"])] = found
    return out


def _paired_tables(claim_runs: pd.DataFrame, gt_runs: pd.DataFrame, hist: pd.DataFrame,
                   counts: dict[str, dict[int, Counts]]) -> tuple[np.ndarray, np.ndarray] | None:
    """(claim, gt) per-problem pass@1 deltas on the seeds both have, as the verdict table pairs them."""
    evs = {}
    for name, group in (("claim", claim_runs), ("gt", gt_runs)):
        ordered = group.sort_values("start_time", kind="stable") if "start_time" in group else group
        evs[name] = {e.seed: e for e in (_evidence(r, hist, counts) for _, r in ordered.iterrows()) if e.has_counts}
    seeds = _seeds(set(evs["claim"]) & set(evs["gt"]))
    if not seeds:
        return None
    both = [evs["claim"][s] for s in seeds] + [evs["gt"][s] for s in seeds]
    ids = _common_ids(both)
    if not ids:
        return None
    return (np.stack([evs["claim"][s].per_problem(ids) for s in seeds]),
            np.stack([evs["gt"][s].per_problem(ids) for s in seeds]))


def series_of(models: list[str], axes: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """Axis name -> its models present in `models`; without axes, one series `models` of all of them."""
    if not axes:
        return {"models": list(models)}
    return {axis: [m for m in members if m in models] for axis, members in axes.items()}


@dataclass
class CurveRow:
    claim: str
    task: str
    axis: str
    measure: str
    threshold: str  # "holds" or "partial"
    threshold_value: float
    crossing: float | None
    side: str  # thresholds.CROSSES, BELOW or ABOVE
    lo: float
    hi: float
    share_below: float
    share_above: float
    levels: list[dict[str, Any]]  # name, x, ratio, seeds


@dataclass
class Agreement:
    claim: str
    task: str
    measure: str
    rho: float
    lo: float
    hi: float
    n_levels: int


def alignment_curve(runs: pd.DataFrame, hist: pd.DataFrame, counts: dict[str, dict[int, Counts]], th: Any,
                    axes: dict[str, list[str]] | None = None, baseline: str = "ground_truth", n_boot: int = 1000,
                    seed: int = 0) -> tuple[list[CurveRow], list[Agreement]]:
    """Crossings per claim x task x axis x measure x threshold, and each measure's rank agreement with the ratios
    across every level of a task (both axes pooled). Empty when no task has three models with alignment runs."""
    measures = alignment_measures(runs)
    claims = runs[runs["rq"].isin(CLAIM_RQS)].copy()
    if claims.empty or not measures:
        return [], []
    claims["label"] = claims.apply(label, axis=1)
    rows, agreements = [], []
    for task in sorted(claims["task"].dropna().unique()):
        models = [m for (m, t) in measures if t == task]
        if len(models) < MIN_LEVELS:
            continue
        for claim in [c for c in dict.fromkeys(claims["label"]) if c.partition("@")[0] != baseline]:
            abl = claim.partition("@")[2]
            levels = _levels(claims, hist, counts, measures, claim, task, models, baseline, abl)
            for axis, members in series_of(models, axes).items():
                on_axis = [lv for lv in levels if lv[0] in members]
                rows += _crossings(claim, task, axis, on_axis, th, n_boot, seed)
            for measure in MEASURES:
                pts = [(lv[1][measure], lv[2].ratio) for lv in levels
                       if math.isfinite(lv[2].ratio) and measure in lv[1]]
                if len(pts) >= MIN_RANK_LEVELS:
                    a = th_mod.predictiveness(measure, *zip(*pts), seed=seed)
                    agreements.append(Agreement(claim, task, measure, a.rho, a.lo, a.hi, a.n_levels))
    return rows, agreements


def _levels(claims, hist, counts, measures, claim, task, models, baseline, abl):
    """[(model, its measures, Level with x = 0 placeholder)] for the models where the claim has paired runs."""
    gt_label = f"{baseline}@{abl}" if abl and (claims["label"] == f"{baseline}@{abl}").any() else baseline
    out = []
    for model in models:
        mine = claims[(claims["task"] == task) & (claims["model"] == model)]
        tables = _paired_tables(mine[mine["label"] == claim], mine[mine["label"] == gt_label], hist, counts)
        if tables is not None:
            out.append((model, measures[(model, task)], th_mod.Level(model, 0.0, *tables)))
    return out


def _crossings(claim, task, axis, levels, th, n_boot, seed) -> list[CurveRow]:
    out = []
    gained = [lv for lv in levels if math.isfinite(lv[2].ratio) and lv[2].claim.shape[0] >= 2]
    if len(gained) < MIN_LEVELS:
        return out
    for measure in [m for m in MEASURES if all(m in lv[1] for lv in gained)]:
        placed = [th_mod.Level(lv[2].name, lv[1][measure], lv[2].claim, lv[2].gt) for lv in gained]
        facts = [_facts(lv, n_boot, seed) for lv in placed]
        for name in ("holds", "partial"):
            ci = th_mod.crossing_interval(placed, getattr(th, name), n_boot=n_boot, seed=seed)
            out.append(CurveRow(claim, task, axis, measure, name, getattr(th, name), ci.crossing.value,
                                ci.crossing.side, ci.lo, ci.hi, ci.share_below, ci.share_above, facts))
    return out


def _facts(level: th_mod.Level, n_boot: int, seed: int) -> dict[str, Any]:
    ci = metrics.paired_ratio_interval(level.claim, level.gt, n_boot=n_boot, seed=seed)
    return {"name": level.name, "x": level.x, "ratio": level.ratio, "ratio_lo": ci.lo, "ratio_hi": ci.hi,
            "seeds": int(level.claim.shape[0])}


def _fmt_interval(row: CurveRow) -> str:
    if row.side == th_mod.BELOW:
        at = f"below the swept range (< {min(lv['x'] for lv in row.levels):.3f})"
    elif row.side == th_mod.ABOVE:
        at = f"not within the swept range (> {max(lv['x'] for lv in row.levels):.3f})"
    else:
        at = f"{row.crossing:.3f}"
    lo = "-inf" if row.lo == -math.inf else f"{row.lo:.3f}"
    hi = "+inf" if row.hi == math.inf else f"{row.hi:.3f}"
    return f"{at} [{lo}, {hi}]"


def markdown(rows: list[CurveRow], agreements: list[Agreement]) -> str:
    lines = ["# Where each claim turns on", "",
             "The alignment at which the isotonic (non-decreasing) fit of the claim's ratio to ground truth reaches "
             "the `holds` and `partial` thresholds (linearly interpolated between the two levels around it), with a "
             "95% bootstrap interval over seeds and problems within each level whose ends are swept levels: the data "
             "place a crossing between two levels, not at a point (open-ended when replicates turn on outside the "
             "swept range; `studykit.analysis.thresholds`).",
             "", "| claim | task | axis | measure | turns `partial` at | turns `holds` at | levels (x: ratio) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    by_key: dict[tuple, dict[str, CurveRow]] = {}
    for r in rows:
        by_key.setdefault((r.claim, r.task, r.axis, r.measure), {})[r.threshold] = r
    for (claim, task, axis, measure), pair in by_key.items():
        levels = ", ".join(f"{lv['x']:.2f}: {lv['ratio']:.2f}" for lv in sorted(pair["holds"].levels, key=lambda v: v["x"]))
        lines.append(f"| {claim} | {task} | {axis} | {measure} | {_fmt_interval(pair['partial'])} | "
                     f"{_fmt_interval(pair['holds'])} | {levels} |")
    if agreements:
        lines += ["", "## Which alignment measure orders the claims' ratios", "",
                  "Spearman's rank correlation across every level of the task (all axes pooled), with a 95% "
                  f"bootstrap interval over levels (given from {MIN_RANK_LEVELS} levels on).", "", "| claim | task | measure | rho [95%] | levels |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {a.claim} | {a.task} | {a.measure} | {a.rho:.2f} [{a.lo:.2f}, {a.hi:.2f}] | {a.n_levels} |"
                  for a in agreements]
    return "\n".join(lines) + "\n"


def write(rows: list[CurveRow], agreements: list[Agreement], folder: Path, figure: bool = True) -> list[Path]:
    """thresholds.json, thresholds.md and (`figure`) alignment_curve.png in `folder`; nothing without a curve."""
    if not rows:
        return []

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    blob = {"rows": [{k: clean(v) for k, v in asdict(r).items()} | {"lo_open": r.lo == -math.inf,
                                                                      "hi_open": r.hi == math.inf} for r in rows],
            "agreement": [asdict(a) for a in agreements]}
    files = [folder / "thresholds.json", folder / "thresholds.md"]
    files[0].write_text(json.dumps(blob, indent=2))
    files[1].write_text(markdown(rows, agreements))
    if not figure:
        return files
    from studykit.analysis.figures import plot_alignment_curve

    files.append(plot_alignment_curve(rows, folder / "alignment_curve.png"))
    return files
