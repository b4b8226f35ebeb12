"""Every eval set of a study side by side: the report behind the contamination study (`reports/<study>/sets.*`).

The verdict table judges each claim on its primary eval set only. A contamination study evaluates every run on a
contaminated and a clean set (the toy's `test` and `test_clean`), and the question is how the two differ, so this
report reads the same runs (studykit.analysis.runs: FINISHED, current cells, newest per cell) and writes:

- `sets.json` / `sets.md`: per alignment run, pass@k at the largest k and the contamination probe (exact match and
  ROUGE-L per prefix fraction, answer recall, each with its bootstrap interval) on every set; per claim run and
  set, pass@1 at step 0 and at the end, its change, and the recall share of the final evaluation
  (`method_share/recall`, where the task reports it), seed by seed;
- `sets_curves.png`: pass@1 against step, one panel per model x claim, one line per set and seed.

`studykit sets STUDY_FILE` (`studykit.cli.sets`) writes it. Reads MLflow; never imports the study layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from studykit.config.schema import RunConfig
from studykit.analysis.report import load_runs
from studykit.tracking import provenance
from studykit.analysis.runs import histories, pass_columns
from studykit.analysis.verdicts import CLAIM_RQS

_PROBE_RE = re.compile(r"^metrics\.contamination/(?P<set>[^/]+)/"
                       r"(?P<stat>em_[\d.]+|rougeL_[\d.]+|answer_acc_prefix\d+|answer_recall)$")


def probe_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per alignment run x eval set: largest-k pass@k and the probe's means and intervals."""
    out = []
    for _, run in runs[runs["rq"] == "alignment"].iterrows():
        passes = pass_columns(run)
        sets = sorted({s for s, _ in passes})
        for s in sets:
            k = max(kk for ss, kk in passes if ss == s)
            row: dict[str, Any] = {"model": run["model"], "task": run["task"], "set": s, "alignment": run["alignment"],
                                   f"pass@{k}": float(run[f"metrics.{passes[(s, k)]}"]), "k": k,
                                   **{t: run.get(t) for t in provenance.KEYS}}
            for col in run.index:
                m = _PROBE_RE.match(col)
                if m and m["set"] == s and pd.notna(run[col]):
                    row[m["stat"]] = [float(run[col]), float(run.get(col + "_lo", float("nan"))),
                                      float(run.get(col + "_hi", float("nan")))]
            out.append(row)
    return out


def claim_rows(runs: pd.DataFrame, hist: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per claim run x eval set: pass@1 at the first and last evaluated step, and the recall share."""
    out = []
    for _, run in runs[runs["rq"].isin(CLAIM_RQS)].iterrows():
        for (s, k), key in sorted(pass_columns(run).items()):
            if k != 1:
                continue
            h = hist[(hist["run_id"] == run["run_id"]) & (hist["key"] == key)].sort_values("step")
            if h.empty:
                continue
            recall = run.get(f"metrics.eval/{s}/method_share/recall")
            out.append({"model": run["model"], "task": run["task"], "claim": run["condition"] or run["claim"],
                        "seed": int(run["seed"]), "set": s, "pass1_start": float(h["value"].iloc[0]),
                        "pass1_end": float(h["value"].iloc[-1]),
                        "delta_pass1": float(h["value"].iloc[-1] - h["value"].iloc[0]),
                        "recall_share_end": None if recall is None or pd.isna(recall) else float(recall),
                        "steps": [int(x) for x in h["step"]], "pass1": [float(x) for x in h["value"]],
                        **{t: run.get(t) for t in provenance.KEYS}})
    return out


def provenance_lines(runs: pd.DataFrame) -> list[str]:
    """Per model x task whose runs (alignment and training, every seed) do not share one code version and one set
    of base weights, or lack those tags (older code): one markdown line saying how (studykit.tracking.provenance)."""
    out = []
    for (model, task), group in runs.groupby(["model", "task"], sort=True):
        found = provenance.check([(f"{r['condition'] or r['claim']} s{r['seed']}", r) for _, r in group.iterrows()])
        if found.state != "same":
            out.append(f"- {model} / {task}: {found.detail}")
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return f"{v[0]:.3f} [{v[1]:.2f}, {v[2]:.2f}]"
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


def markdown(probes: list[dict[str, Any]], claims: list[dict[str, Any]]) -> str:
    lines = ["## Alignment and contamination of each base model, per eval set", ""]
    if probes:
        stats = list(dict.fromkeys(k for r in probes for k in r if k.startswith(("pass@", "em_", "rougeL_",
                                                                                  "answer_acc", "answer_recall"))))
        lines += ["| model | set | " + " | ".join(stats) + " | alignment tag |", "|---|---|" + "---|" * (len(stats) + 1)]
        lines += [f"| {r['model']} | {r['set']} | " + " | ".join(_fmt(r.get(s)) for s in stats)
                  + f" | {r['alignment']} |" for r in probes]
    lines += ["", "## pass@1 of each training run, per eval set (step 0 -> last evaluation)", "",
              "| model | claim | set | seed | pass@1 start | pass@1 end | delta | recall share at end |",
              "|---|---|---|---|---|---|---|---|"]
    for r in sorted(claims, key=lambda r: (r["model"], r["claim"] != "ground_truth", r["claim"], r["set"], r["seed"])):
        lines.append(f"| {r['model']} | {r['claim']} | {r['set']} | {r['seed']} | {_fmt(r['pass1_start'])} | "
                     f"{_fmt(r['pass1_end'])} | {r['delta_pass1']:+.3f} | {_fmt(r['recall_share_end'])} |")
    return "\n".join(lines) + "\n"


def plot_curves(claims: list[dict[str, Any]], path: Path) -> Path | None:
    """pass@1 by step, one panel per model x claim, one line per set x seed."""
    if not claims:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in claims})
    names = sorted({r["claim"] for r in claims}, key=lambda c: (c != "ground_truth", c))
    fig, axes = plt.subplots(len(models), len(names), figsize=(2.6 * len(names), 2.2 * len(models)), squeeze=False,
                             sharex=True, sharey=True)
    sets = sorted({r["set"] for r in claims})
    for r in claims:
        ax = axes[models.index(r["model"])][names.index(r["claim"])]
        ax.plot(r["steps"], r["pass1"], color=f"C{sets.index(r['set'])}", ls="-" if r["seed"] == 0 else "--",
                label=f"{r['set']} s{r['seed']}", lw=1.2)
    for i, m in enumerate(models):
        for j, c in enumerate(names):
            axes[i][j].set_title(f"{m.replace('toy:', '')} / {c}", fontsize=8)
            axes[i][j].set_ylim(-0.02, 1.02)
    axes[0][0].legend(fontsize=6)
    fig.supxlabel("step")
    fig.supylabel("pass@1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(study: str, cells: Sequence[RunConfig], uri: str | None = None, out_dir: str | Path = "reports") -> list[Path]:
    """Write reports/<study>/sets.{json,md} and sets_curves.png for the study's current cells."""
    sel = load_runs(study, cells, uri)
    runs = sel.runs
    if runs.empty:
        raise ValueError(f"study {study!r}: no FINISHED run of its cells")
    claim_runs = runs[runs["rq"] != "alignment"]
    keys = sorted({k for _, r in claim_runs.iterrows() for (s, kk), k in pass_columns(r).items() if kk == 1})
    hist = histories(claim_runs, uri, keys=keys) if keys else pd.DataFrame(columns=["run_id", "key", "step", "value"])
    probes, claims = probe_rows(runs), claim_rows(runs, hist)
    folder = Path(out_dir) / study
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "sets.json", folder / "sets.md"]
    mixed = provenance_lines(runs)
    files[0].write_text(json.dumps({"study": study, "missing": sel.missing, "alignment": probes, "runs": claims,
                                    "provenance": mixed}, indent=1))
    files[1].write_text(f"# Every eval set: study `{study}`\n\n{len(sel.missing)} cells without a FINISHED run"
                        f"{': ' + ', '.join(sel.missing) if sel.missing else ''}.\n\n" + markdown(probes, claims)
                        + ("\n## Provenance\n\n" + "\n".join(mixed) + "\n" if mixed else ""))
    if png := plot_curves(claims, folder / "sets_curves.png"):
        files.append(png)
    return files
