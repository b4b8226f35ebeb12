"""`studykit toy build [--all | NAME]`: build toy models into the cache ahead of a study.

`add_toy_parser(subparsers)` adds the `toy` command to the main CLI's subparsers and sets
`func=run_toy`. `--all` builds every preset, `--jobs` of them at once in separate processes with one
thread each (default 2). Already-built entries are reused; `--report` also prints each model's
alignment report (pass@k on the held-out pool) as a JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from studykit.toy.presets import NAMES, PRESETS


def add_toy_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `toy build` to an argparse subparsers object; returns the `toy` parser."""
    toy = subparsers.add_parser("toy", help="the toy world: build tiny pretrained models")
    sub = toy.add_subparsers(dest="toy_command", required=True)
    build = sub.add_parser("build", help="build toy models into the cache ($STUDYKIT_CACHE/toy)")
    build.add_argument("name", nargs="?", choices=[n for n in NAMES if n != "custom"], help="one preset")
    build.add_argument("--all", action="store_true", help="build every preset")
    build.add_argument("--jobs", type=int, default=2, help="presets built at once (processes, one thread each)")
    build.add_argument("--cache", help="cache folder (sets STUDYKIT_CACHE)")
    build.add_argument("--report", action="store_true", help="print each model's alignment report")
    toy.set_defaults(func=run_toy)
    return toy


def build_one(name: str, report: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build (or reuse) one preset in this process; returns its folder, seconds and optional report."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from studykit.toy.cache import ensure_built, load

    torch.set_num_threads(1)
    start = time.perf_counter()
    folder = ensure_built(name, progress=progress)
    row: dict[str, Any] = {"preset": name, "folder": str(folder), "build_s": round(time.perf_counter() - start, 1)}
    if report:
        from studykit.probes.toy_report import alignment_report

        row.update(alignment_report(*load(name)))
    return row


def build_many(names: list[str], jobs: int = 2, report: bool = False) -> list[dict[str, Any]]:
    """Build presets, `jobs` at a time in spawned processes (in this process when jobs is 1)."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    os.environ["OMP_NUM_THREADS"] = "1"
    if jobs == 1 or len(names) == 1:
        return [build_one(n, report) for n in names]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        return list(pool.map(build_one, names, [report] * len(names)))


def run_toy(args: argparse.Namespace) -> int:
    """Handler of `studykit toy build`."""
    if args.all == bool(args.name):
        print("studykit toy build: give either a preset NAME or --all", file=sys.stderr)
        return 2
    if args.cache:
        os.environ["STUDYKIT_CACHE"] = args.cache
    names = list(PRESETS) if args.all else [args.name]
    for row in build_many(names, args.jobs, args.report):
        print(json.dumps(row))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studykit")
    add_toy_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
