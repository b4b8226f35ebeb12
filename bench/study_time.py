"""Where a study's time went: wall time, toy builds, and per cell startup vs training vs evaluation vs the rest.

    .venv/bin/python bench/study_time.py toy                 # params/studies/toy.yaml, outputs/toy/, MLFLOW_TRACKING_URI
    .venv/bin/python bench/study_time.py smoke --uri sqlite:///path/mlflow.db --outputs path/outputs/smoke --json

Reads what a study leaves behind: `outputs/<study>/timing.json` (the last invocation's wall time, workers and toy
builds), `outputs/<study>/summary.json` (each cell's wall seconds in the runner, claim to conclusion) and each cell
run's `time/` metrics in MLflow: `time/startup_s` and `time/startup_cpu_s` (kernel process start to the run's
start: kernel, imports not done by the warm-kernel zygote, toy model load, store setup), the per-step
`time/sample_s` + `time/update_s` (training) and `time/eval_s` (evaluations). Per cell:

    outside  = cell wall - run wall            (papermill, kernel start and shutdown, the runner's claim and notebook
                                                logging; the kernel's own startup is in `startup` when the run logs it)
    startup  = time/startup_s                  (part of outside: it happens before the run starts)
    training = sum(sample_s + update_s), evaluation = sum(eval_s), run other = run wall - training - evaluation

Only cells that ran in the last invocation (status done, with a run) are counted; skipped ones cost nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

PARTS = ("cell_wall", "outside", "startup", "startup_cpu", "training", "evaluation", "run_other")


def _sum_history(client, run_id: str, key: str) -> float:
    return sum(m.value for m in client.get_metric_history(run_id, key))


def cell_breakdown(client, outcome: dict) -> dict[str, float] | None:
    """The time parts of one done cell, or None when it has no run."""
    if outcome.get("status") != "done" or not outcome.get("run_id"):
        return None
    run = client.get_run(outcome["run_id"])
    run_wall = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000.0
    train = _sum_history(client, run.info.run_id, "time/sample_s") + _sum_history(client, run.info.run_id,
                                                                                   "time/update_s")
    evals = _sum_history(client, run.info.run_id, "time/eval_s")
    metrics = run.data.metrics
    return {"cell": outcome["name"], "cell_wall": outcome["seconds"], "outside": outcome["seconds"] - run_wall,
            "startup": metrics.get("time/startup_s", float("nan")),
            "startup_cpu": metrics.get("time/startup_cpu_s", float("nan")),
            "training": train, "evaluation": evals, "run_other": run_wall - train - evals,
            "kind": run.data.tags.get("rq", "?")}


def report(study: str, uri: str, outputs: Path) -> dict:
    from mlflow.tracking import MlflowClient

    timing_file, summary_file = outputs / "timing.json", outputs / "summary.json"
    for f in (timing_file, summary_file):
        if not f.is_file():
            raise SystemExit(f"{f} not found: run the study first (studykit study {study})")
    timing = json.loads(timing_file.read_text())
    outcomes = json.loads(summary_file.read_text())
    client = MlflowClient(tracking_uri=uri)
    cells = [c for c in (cell_breakdown(client, o) for o in outcomes) if c is not None]
    parts = {}
    for part in PARTS:
        values = [c[part] for c in cells if c[part] == c[part]]  # NaN: a run from before time/startup_s existed
        parts[part] = {"mean": statistics.fmean(values) if values else None, "sum": sum(values), "n": len(values)}
    return {"study": study, "wall_s": timing["wall_s"], "workers": timing["workers"],
            "warm_kernels": timing.get("warm_kernels"), "builds": timing["builds"], "compare_s": timing["compare_s"],
            "cells_run": len(cells), "cells_skipped": sum(o["status"] == "skipped" for o in outcomes),
            "parts": parts, "cells": cells}


def _print(rep: dict) -> None:
    print(f"study {rep['study']}: wall {rep['wall_s']:.0f} s with {rep['workers']} workers "
          f"(warm kernels: {rep['warm_kernels']}); {rep['cells_run']} cells ran, {rep['cells_skipped']} skipped")
    for b in rep["builds"]:
        print(f"  toy build {b['label']}: {b['seconds']:.0f} s ({b['steps']} steps, {'ok' if b['ok'] else 'FAILED'})")
    if rep["compare_s"] is not None:
        print(f"  compare step: {rep['compare_s']:.0f} s")
    print(f"  {'per cell':28s} {'mean s':>8s} {'sum s':>9s}")
    labels = {"cell_wall": "cell wall", "outside": "outside the run", "startup": "  of it: kernel startup",
              "startup_cpu": "  kernel startup CPU", "training": "training (sample+update)",
              "evaluation": "evaluation", "run_other": "run other (logging, saving)"}
    for part in PARTS:
        p = rep["parts"][part]
        mean = f"{p['mean']:8.2f}" if p["mean"] is not None else "       -"
        print(f"  {labels[part]:28s} {mean} {p['sum']:9.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("study", help="study name (outputs/<name>/ and its MLflow experiment)")
    ap.add_argument("--uri", default=None, help="tracking URI (default: MLFLOW_TRACKING_URI, else the embedded store)")
    ap.add_argument("--outputs", type=Path, default=None, help="the study's outputs folder (default outputs/<study>)")
    ap.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = ap.parse_args(argv)
    from studykit.tracking.experiment import tracking_uri

    uri = tracking_uri(args.uri or os.environ.get("MLFLOW_TRACKING_URI"))
    rep = report(args.study, uri, args.outputs or Path("outputs") / args.study)
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        _print(rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
