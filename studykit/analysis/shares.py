"""Final diagnostic shares: what the policy ends up doing, per claim and model (`shares.json`, `shares.md`).

A task's optional `diagnose` hook (studykit.tasks) sorts each completion into a category per statistic (the toy task:
`method_share` = which method the completion used: `sum`, the wrong `count` or `max`, ...), and every evaluation logs
the shares as `eval/<set>/<stat>/<category>`. The run's last logged value is the policy's state at the end; the
alignment run's is the base model's. This module tabulates them for the study's primary eval set: the mean share per
category across seeds, and each seed's dominant category, so a collapse onto one method (the clipping-bias mechanism
Spurious Rewards describes for random reward) is shown per seed rather than averaged away.
Reads nothing itself: `studykit.analysis.report` passes the runs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from studykit.analysis.runs import primary_set
from studykit.analysis.verdicts import CLAIM_RQS, label

_SHARE = re.compile(r"^metrics\.eval/(?P<set>[^/]+)/(?P<stat>[^/]+)/(?P<cat>[^/]+)$")
BASE = "base (alignment run)"


def _shares_of(run: pd.Series) -> dict[str, dict[str, float]]:
    """stat -> category -> final share on the run's primary eval set."""
    eval_set = primary_set(run)
    out: dict[str, dict[str, float]] = {}
    for col in run.index:
        m = _SHARE.match(col)
        if m and m["set"] == eval_set and pd.notna(run[col]):
            out.setdefault(m["stat"], {})[m["cat"]] = float(run[col])
    return out


def final_shares(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per (claim, model, task, stat): mean share per category, n_seeds, each seed's dominant category."""
    wanted = runs[runs["rq"].isin((*CLAIM_RQS, "alignment"))]
    groups: dict[tuple, list[tuple[str, dict[str, float]]]] = {}
    for _, run in wanted.iterrows():
        claim = BASE if run["rq"] == "alignment" else label(run)  # ablation runs: `<condition>@<ablation>`
        for stat, cats in _shares_of(run).items():
            groups.setdefault((claim, str(run["model"]), str(run["task"]), stat), []).append((str(run["seed"]), cats))
    records = []
    for (claim, model, task, stat), per_seed in sorted(groups.items()):
        cats = sorted({c for _, shares in per_seed for c in shares})
        mean = {c: sum(s.get(c, 0.0) for _, s in per_seed) / len(per_seed) for c in cats}
        dominant = Counter(max(s, key=s.get) for _, s in per_seed if s)
        records.append({"claim": claim, "model": model, "task": task, "stat": stat, "n_seeds": len(per_seed),
                        "mean": mean, "dominant": dict(sorted(dominant.items())),
                        "max_share_per_seed": sorted(round(max(s.values()), 3) for _, s in per_seed if s)})
    return records


def markdown(records: list[dict[str, Any]]) -> str:
    """One table per statistic: rows claim x model, a column per category, the dominant category per seed."""
    if not records:
        return ""
    parts = ["# Final diagnostic shares\n\nThe last evaluation's share of each category (the task's `diagnose` hook), "
             "mean over seeds; `dominant` counts the seeds whose largest category it is; `max share` lists each "
             f"seed's largest share. `{BASE}` is the base model.\n"]
    for stat in sorted({r["stat"] for r in records}):
        rows = [r for r in records if r["stat"] == stat]
        cats = sorted({c for r in rows for c in r["mean"]})
        head = ["claim", "model", "task", "seeds", *cats, "dominant", "max share"]
        lines = [f"\n## {stat}\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            dom = ", ".join(f"{c} x{n}" for c, n in r["dominant"].items())
            cells = [r["claim"], r["model"], r["task"], str(r["n_seeds"]),
                     *(f"{r['mean'].get(c, 0.0):.2f}" for c in cats), dom,
                     " ".join(f"{v:.2f}" for v in r["max_share_per_seed"])]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def write(runs: pd.DataFrame, folder: Path) -> list[Path]:
    """shares.json and shares.md in `folder` when the runs logged diagnostic shares; else remove stale ones."""
    records = final_shares(runs)
    paths = [folder / "shares.json", folder / "shares.md"]
    if not records:
        for p in paths:
            p.unlink(missing_ok=True)
        return []
    paths[0].write_text(json.dumps(records, indent=2))
    paths[1].write_text(markdown(records))
    return paths
