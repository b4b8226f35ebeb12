"""`studykit plan PARAMS [--gpu-memory GiB] [--prompt-tokens N] [--uri URI]`: the pre-flight plan of a run file,
or of every cell of a study file (one line per cell, then the full plan of the largest), exit 1 when any does not
fit. Registered in studykit.cli.commands through `register(sub)`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from studykit.planning import plan


def register(sub) -> None:
    p = sub.add_parser("plan", help="expected peak GPU memory of a run or study, and whether it fits")
    p.add_argument("params", help="run YAML or study YAML")
    p.add_argument("--gpu-memory", type=_gib, metavar="GiB",
                   help="plan for a GPU of this many GiB (default: this machine's, torch.cuda.mem_get_info)")
    p.add_argument("--prompt-tokens", type=int, default=None,
                   help="prompt length to plan for (default: the longest templated prompt of the run's task pools, "
                        f"counted with the model's tokenizer where it is local, else estimated; {plan.PROMPT_TOKENS} "
                        "when the pools cannot be read)")
    p.add_argument("--uri", help="MLflow store to look up measured step times (default: the run's)")
    p.set_defaults(func=cmd_plan)


def _gib(text: str) -> float:
    """A positive, finite GiB count: `nan` would compare false with every need and print "fits"."""
    import argparse
    import math

    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of GiB, got {text!r}")
    return value


def _configs(path: str) -> list[tuple[str, object]]:
    from studykit.config.schema import load_yaml, validate
    from studykit.study.spec import expand, is_study

    data = load_yaml(path)
    if is_study(data):
        return [(c.name, c.config) for c in expand(path)
                if c.config.train.steps > 0 or c.config.rq == "alignment" or c.config.eval.sampler == "power"]
    cfg = validate(data, path)
    return [(cfg.run_name(), cfg)]


def cmd_plan(args) -> int:
    if args.prompt_tokens is not None and args.prompt_tokens < 1:
        print("error: --prompt-tokens: expected an integer >= 1", file=sys.stderr)
        return 2
    configs = _configs(args.params)
    plans = []
    for name, cfg in configs:
        try:
            p = plan.make_plan(cfg, args.gpu_memory, args.prompt_tokens)
        except plan.ArchUnknown as err:
            print(f"{name}: cannot plan: {err}", file=sys.stderr)
            return 2
        plans.append((name, cfg, p))
    if len(plans) > 1:
        for name, _, p in plans:
            print(f"{name:56s} peak {plan._gib(p.peak):>7s} GiB  {'fits' if p.fits else 'DOES NOT FIT'}")
        print()
    name, cfg, worst = max(plans, key=lambda t: t[2].peak)
    worst.timing = measured_times(cfg, args.uri)
    print((f"largest cell: {name}\n" if len(plans) > 1 else "") + worst.report())
    bad = [n for n, _, p in plans if not p.fits]
    if bad:
        print(f"{len(bad)} of {len(plans)} do not fit" if len(plans) > 1 else "", file=sys.stderr)
        for n, _, p in plans:
            if not p.fits and p is not worst:
                print(f"{n}:\n  - " + "\n  - ".join(p.problems), file=sys.stderr)
    return 1 if bad else 0


def measured_times(cfg, uri: str | None = None) -> str:
    """Seconds per sampling and update of recorded runs of this config (MLflow, by config hash), else unmeasured.
    Reads a store only where one exists (no database is created by planning)."""
    import mlflow

    uri = uri or cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        return f"unmeasured (no tracking store at {uri})"
    try:
        client = mlflow.MlflowClient(uri)
        exps = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(exps, f"tags.config_hash = '{cfg.config_hash()}'") if exps else []
    except mlflow.exceptions.MlflowException as err:
        return f"unmeasured (tracking store not readable: {err})"
    got = [r for r in runs if {"time/sample_s", "time/update_s"} <= set(r.data.metrics)]
    if not got:
        return "unmeasured (no recorded run of this config)"
    m = got[0].data.metrics
    return (f"{m['time/sample_s']:.1f} s sampling + {m['time/update_s']:.1f} s update (measured: last step of run "
            f"{got[0].info.run_id})")
