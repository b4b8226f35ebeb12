"""`studykit plan PARAMS [--gpu-memory GiB] [--prompt-tokens N] [--uri URI]`: the pre-flight plan of a run file,
or of every cell of a study file (one line per cell, then the full plan of the largest), exit 1 when any does not
fit. Registered in studykit.cli through `register(sub)`."""

from __future__ import annotations

import sys

from . import plan


def register(sub) -> None:
    p = sub.add_parser("plan", help="expected peak GPU memory of a run or study, and whether it fits")
    p.add_argument("params", help="run YAML or study YAML")
    p.add_argument("--gpu-memory", type=float, metavar="GiB",
                   help="plan for a GPU of this many GiB (default: this machine's, torch.cuda.mem_get_info)")
    p.add_argument("--prompt-tokens", type=int, default=plan.PROMPT_TOKENS,
                   help=f"assumed prompt length (default {plan.PROMPT_TOKENS})")
    p.add_argument("--uri", help="MLflow store to look up measured step times (default: the run's)")
    p.set_defaults(func=cmd_plan)


def _configs(path: str) -> list[tuple[str, object]]:
    from .config import load_yaml, validate
    from .study import expand, is_study

    data = load_yaml(path)
    if is_study(data):
        return [(c.name, c.config) for c in expand(path) if c.config.train.steps > 0 or c.config.rq == "alignment"]
    cfg = validate(data, path)
    return [(cfg.run_name(), cfg)]


def cmd_plan(args) -> int:
    if args.prompt_tokens < 1:
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
    worst.timing = plan.measured_times(cfg, args.uri)
    print((f"largest cell: {name}\n" if len(plans) > 1 else "") + worst.report())
    bad = [n for n, _, p in plans if not p.fits]
    if bad:
        print(f"{len(bad)} of {len(plans)} do not fit" if len(plans) > 1 else "", file=sys.stderr)
        for n, _, p in plans:
            if not p.fits and p is not worst:
                print(f"{n}:\n  - " + "\n  - ".join(p.problems), file=sys.stderr)
    return 1 if bad else 0
