"""Seaborn figures for the notebooks and reports (matplotlib backend Agg, so they work without a display).

`report_figures` draws the three report figures: pass@k curves per model from the alignment runs, true-accuracy
training curves per condition (one panel per model), and a heatmap of ratio_to_gt (claims x models).
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
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .runs import client, parse_pass_key, pass_columns  # noqa: E402


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
    data = table[~table["verdict"].isin(["baseline"]) & ~table["verdict"].str.startswith("n/a")]
    grid = data.pivot_table(index="claim", columns="model", values="ratio_to_gt", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * max(1, grid.shape[1]), 1.2 + 0.45 * max(1, grid.shape[0])))
    if grid.size:
        sns.heatmap(grid, annot=True, fmt=".2f", cmap="RdYlGn", vmin=0, vmax=1.2, ax=ax)
    ax.set_title("claim gain / ground-truth GRPO gain (pass@1)")
    return fig


def report_figures(runs: pd.DataFrame, hist: pd.DataFrame, table: pd.DataFrame, folder: Path) -> list[Path]:
    """Write the report figures that have data; returns their paths."""
    out = []
    align = alignment_frame(runs)
    if len(align):
        out.append(_save(plot_pass_at_k(align), folder / "pass_at_k.png"))
    if (hist["key"] == "train/accuracy").any():
        out.append(_save(plot_training_curves(hist), folder / "training_accuracy.png"))
    claims = table[table["verdict"] != "baseline"] if len(table) else table
    if len(claims) and claims["ratio_to_gt"].notna().any():
        out.append(_save(plot_ratio_heatmap(table), folder / "ratio_to_gt.png"))
    return out


def plot_pass_at_k_bands(counts_by_set: dict[str, Any], n: int, ks: list[int], title: str = ""):
    """pass@k curve per eval set with 95% bootstrap bands over problems (studykit.metrics.pass_at_k_bands)."""
    from .metrics import pass_at_k_bands

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
    n, title = cfg.eval.n_samples, f"{cfg.model.name}: {getattr(result, 'label', '')}"
    if counts:
        ks = [k for k in range(1, n + 1) if k & (k - 1) == 0 or k == n]
        return plot_pass_at_k_bands(counts, n, ks, title)
    rows = [{"set": s, "k": int(k), "pass@k": v} for s, curve in result.curves.items() for k, v in curve.items()]
    fig = plot_pass_at_k(pd.DataFrame(rows).assign(model=cfg.model.name))
    fig.axes[0].set_title(title)
    return fig
