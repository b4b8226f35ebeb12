"""Seaborn figures for the notebooks and reports (matplotlib backend Agg, so they work without a display).

`report_figures` draws the report figures: pass@k curves per model from the alignment runs (`pass_at_k.png`),
true-accuracy training curves per condition, one panel per model (`training_accuracy.png`), a heatmap of the
claim / ground-truth ratio with its 95% interval, claims x models (`ratio_to_gt.png`), and pass@k (k = 1, 2, 4, ...
<= n, log2 axis) at step 0 and after training for the RQ3 claims and ground truth, from the runs' per-problem
counts (`pass_at_k_trained.png`). Data come in as frames and counts (studykit.analysis.runs); nothing here reads the
verdict logic.
`plot_run` draws one run's eval pass@1 and training accuracy; `plot_pass_at_k_bands` draws a pass@k curve with
bootstrap bands (studykit's addition: the paper shows curves without bands).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:  # notebooks keep their inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from studykit.scoring.metrics import pass_at_k_curve  # noqa: E402
from studykit.analysis.runs import Counts, client, parse_pass_key, pass_columns  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def alignment_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table model, task, set, k, pass@k from the alignment runs' logged `eval/<set>/pass@<k>`."""
    rows = []
    for _, run in runs[runs["rq"] == "alignment"].iterrows():
        for (eval_set, k), key in pass_columns(run).items():
            rows.append({"model": run["model"], "task": run["task"], "set": eval_set, "k": k,
                         "pass@k": float(run[f"metrics.{key}"])})
    return pd.DataFrame(rows, columns=["model", "task", "set", "k", "pass@k"])


def plot_pass_at_k(frame: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(frame, x="k", y="pass@k", hue="model", style="set", marker="o", ax=ax)
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.02)
    ax.set_title("pass@k of the base models (alignment)")
    return fig


def plot_training_curves(hist: pd.DataFrame, key: str = "train/accuracy"):
    data = hist[hist["key"] == key]
    models = sorted(data["model"].dropna().unique())
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.5 * max(1, len(models)), 3.6), squeeze=False,
                             sharey=True)
    conditions = sorted(data["condition"].dropna().unique())
    palette = dict(zip(conditions, sns.color_palette("tab20", len(conditions))))
    for ax, model in zip(axes[0], models):
        part = data[data["model"] == model]
        sns.lineplot(part, x="step", y="value", hue="condition", hue_order=conditions, palette=palette, ax=ax,
                     errorbar=("pi", 100), legend=ax is axes[0][-1])
        ax.set_title(model)
        ax.set_ylabel(key)
    if axes[0][-1].get_legend() is not None:  # one legend, outside the panels
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_ratio_heatmap(table: pd.DataFrame):
    """claims x models heatmap of the ratio, each cell annotated with its 95% interval; n/a cells left blank."""
    data = table[~table["verdict"].isin(["baseline"]) & ~table["verdict"].str.startswith("n/a")]
    data = data[data["ratio"].notna()]
    grid = data.pivot_table(index="claim", columns="model", values="ratio", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(2.2 + 2.0 * max(1, grid.shape[1]), 1.2 + 0.5 * max(1, grid.shape[0])))
    if grid.size:
        text = grid.copy().astype(object)
        for (claim, model), part in data.groupby(["claim", "model"]):
            r = part.iloc[0]
            ci = f"[{_num(r['ratio_lo'])}, {_num(r['ratio_hi'])}]" if pd.notna(r["ratio_lo"]) else "(no interval)"
            text.loc[claim, model] = f"{r['ratio']:.2f}\n{ci}"
        sns.heatmap(grid, annot=text.fillna("").to_numpy(), fmt="", cmap="RdYlGn", vmin=0, vmax=1.2, ax=ax,
                    annot_kws={"fontsize": 8})
    ax.set_title("claim gain / ground-truth GRPO gain (pass@1), 95% interval")
    return fig


def _num(v: float) -> str:
    return "" if pd.isna(v) else "inf" if v == float("inf") else "-inf" if v == float("-inf") else f"{v:.2f}"


def trained_pass_at_k_frame(runs: pd.DataFrame, counts: dict[str, dict[int, Counts]],
                            baseline: str = "ground_truth") -> pd.DataFrame:
    """Long table model, task, claim, stage (`step 0` / `final`), k, pass@k (mean over seeds) for the rq3 runs and
    the plain ground-truth runs of the same models, from their per-problem counts (`metrics.pass_at_k_curve`,
    k = 1, 2, 4, ... <= n)."""
    rq3 = runs[runs["rq"] == "rq3"]
    chosen = runs[(runs["rq"] == "rq3") | ((runs["claim"] == baseline) & (runs["rq"] != "ablation")
                                          & runs["model"].isin(rq3["model"]))]
    rows = []
    for _, run in chosen.iterrows():
        steps = counts.get(run["run_id"]) or {}
        if len(steps) < 2:
            continue
        for stage, step in (("step 0", min(steps)), ("final", max(steps))):
            c = steps[step]
            ks = [2 ** i for i in range(c.n.bit_length()) if 2 ** i <= c.n]
            for k, v in pass_at_k_curve(c.correct, c.n, ks).items():
                rows.append({"model": run["model"], "task": run["task"], "claim": run["claim"], "seed": run["seed"],
                             "stage": stage, "k": k, "pass@k": v})
    frame = pd.DataFrame(rows, columns=["model", "task", "claim", "seed", "stage", "k", "pass@k"])
    keys = ["model", "task", "claim", "stage", "k"]
    return frame.groupby(keys, as_index=False, sort=False)["pass@k"].mean() if len(frame) else frame[keys + ["pass@k"]]


def plot_trained_pass_at_k(frame: pd.DataFrame):
    """pass@k (log2 k) before (step 0, dashed) and after training (solid), one panel per model x task, one colour
    per claim."""
    panels = list(dict.fromkeys(zip(frame["model"], frame["task"])))
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.8 * max(1, len(panels)), 3.8), squeeze=False,
                             sharey=True)
    claims = list(dict.fromkeys(frame["claim"]))
    palette = dict(zip(claims, sns.color_palette("tab10", len(claims))))
    for ax, (model, task) in zip(axes[0], panels):
        part = frame[(frame["model"] == model) & (frame["task"] == task)]
        sns.lineplot(part, x="k", y="pass@k", hue="claim", hue_order=claims, palette=palette, style="stage",
                     style_order=["final", "step 0"], marker="o", ax=ax, legend=ax is axes[0][-1])
        ax.set_xscale("log", base=2)
        ax.set(ylim=(0, 1.02), title=f"{model} / {task}")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.suptitle("pass@k: step 0 (dashed) and after training", fontsize=10)
    fig.tight_layout()
    return fig


def report_figures(runs: pd.DataFrame, hist: pd.DataFrame, table: pd.DataFrame, folder: Path,
                   counts: dict[str, dict[int, Counts]] | None = None) -> list[Path]:
    """Write the report figures that have data; returns their paths."""
    out = []
    align = alignment_frame(runs)
    if len(align):
        out.append(_save(plot_pass_at_k(align), folder / "pass_at_k.png"))
    if (hist["key"] == "train/accuracy").any():
        out.append(_save(plot_training_curves(hist), folder / "training_accuracy.png"))
    if len(table) and table["ratio"].notna().any():
        out.append(_save(plot_ratio_heatmap(table), folder / "ratio_to_gt.png"))
    trained = trained_pass_at_k_frame(runs, counts or {})
    if (trained["claim"].isin(runs.loc[runs["rq"] == "rq3", "claim"])).any():
        out.append(_save(plot_trained_pass_at_k(trained), folder / "pass_at_k_trained.png"))
    return out


def plot_pass_at_k_bands(counts_by_set: dict[str, Any], n: int, ks: list[int], title: str = ""):
    """pass@k curve per eval set with 95% bootstrap bands over problems (studykit.scoring.metrics.pass_at_k_bands)."""
    from studykit.scoring.metrics import pass_at_k_bands

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, counts in counts_by_set.items():
        bands = pass_at_k_bands(list(counts), n, ks)
        xs = sorted(bands)
        ax.plot(xs, [bands[k][0] for k in xs], marker="o", label=label)
        ax.fill_between(xs, [bands[k][1] for k in xs], [bands[k][2] for k in xs], alpha=0.25)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="k", ylabel="pass@k", ylim=(0, 1.02), title=title)
    ax.legend()
    return fig


def plot_run(run_id: str, uri: str | None = None):
    """Eval pass@1 (each set) and true training accuracy of one run, by step."""
    mlc = client(uri)
    keys = [k for k in mlc.get_run(run_id).data.metrics
            if k == "train/accuracy" or (parse_pass_key(k) or ("", 0))[1] == 1]
    rows = [{"key": k, "step": m.step, "value": m.value} for k in keys for m in mlc.get_metric_history(run_id, k)]
    fig, ax = plt.subplots(figsize=(6, 4))
    if rows:
        sns.lineplot(pd.DataFrame(rows), x="step", y="value", hue="key", marker="o", ax=ax)
    ax.set_title(f"run {run_id[:8]}")
    return fig


def plot_alignment(result: Any, cfg: Any):
    """The 00_alignment figure: per eval set, pass@k with bootstrap bands from the per-problem correct counts
    when the result carries them, else the plain curves."""
    counts = next((getattr(result, a) for a in ("counts", "correct_counts", "per_problem") if hasattr(result, a)),
                  None)
    n, title = cfg.eval.n_samples, f"{cfg.model.shown}: {getattr(result, 'label', '')}"
    if counts:
        ks = [k for k in range(1, n + 1) if k & (k - 1) == 0 or k == n]
        return plot_pass_at_k_bands(counts, n, ks, title)
    rows = [{"set": s, "k": int(k), "pass@k": v} for s, curve in result.curves.items() for k, v in curve.items()]
    fig = plot_pass_at_k(pd.DataFrame(rows).assign(model=cfg.model.shown))
    fig.axes[0].set_title(title)
    return fig


def plot_alignment_curve(rows, path: Path, measure: str = "pass@k") -> Path:
    """Each claim's ratio to ground truth (with its interval) against the models' measured alignment, one panel per
    claim, one series per axis, the study's `holds` (dashed) and `partial` (dotted) thresholds as lines
    (`studykit.analysis.curve`)."""
    mine = [r for r in rows if r.measure == measure and r.threshold == "holds"]
    claims = list(dict.fromkeys(r.claim for r in mine))
    cols = min(4, len(claims)) or 1
    n_rows = (len(claims) + cols - 1) // cols or 1
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.2 * cols, 2.6 * n_rows), squeeze=False, sharey=True)
    holds = next((r.threshold_value for r in rows if r.threshold == "holds"), 0.7)
    partial = next((r.threshold_value for r in rows if r.threshold == "partial"), 0.3)
    for ax, claim in zip(axes.flat, claims):
        for r in (r for r in mine if r.claim == claim):
            pts = sorted(r.levels, key=lambda lv: lv["x"])
            xs = [lv["x"] for lv in pts]
            ys = [lv["ratio"] for lv in pts]
            err = [[max(0.0, y - lv["ratio_lo"]) if np.isfinite(lv["ratio_lo"]) else 0.0 for y, lv in zip(ys, pts)],
                   [max(0.0, lv["ratio_hi"] - y) if np.isfinite(lv["ratio_hi"]) else 0.0 for y, lv in zip(ys, pts)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, lw=1, label=r.axis)
        for y, style in ((holds, "--"), (partial, ":")):
            ax.axhline(y, color="grey", ls=style, lw=0.8)
        ax.set_title(claim, fontsize=9)
        ax.set_xlabel(f"base model {measure}", fontsize=8)
        ax.set_ylim(-1.0, 1.5)
    for ax in list(axes.flat)[len(claims):]:
        ax.axis("off")
    axes[0][0].set_ylabel("ratio to ground truth", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

