"""Benchmark: build every toy preset into a fresh cache and measure its alignment.

    .venv/bin/python bench/toy_build.py [--cache DIR] [--jobs 2] [--n-problems 256] [--n-samples 32]

Prints a markdown table (preset, build_s, pass@1/4/16/32, format rate, method shares) and then one
JSON line per preset. Builds run `--jobs` at a time in separate processes, one thread each; build_s
is the wall time of each build inside its process (noisy when the machine's cores are shared).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BANDS = {
    "strong": "pass@1 >= 0.35, pass@16 >= 0.95",
    "weak-method": "pass@1 <= 0.06, pass@16 in [0.10, 0.50], sum share <= 0.2",
    "weak-skill": "pass@1 <= 0.06, pass@16 in [0.10, 0.50], sum share >= 0.7",
}


def in_band(name: str, r: dict) -> bool:
    p1, p16, share = r["pass@1"], r["pass@16"], r["method_shares"]["sum"]
    if name == "strong":
        return p1 >= 0.35 and p16 >= 0.95
    weak = p1 <= 0.06 and 0.10 <= p16 <= 0.50
    return weak and (share <= 0.2 if name == "weak-method" else share >= 0.7)


def build_and_measure(name: str, cache: str, n_problems: int, n_samples: int) -> dict:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["STUDYKIT_CACHE"] = cache
    import torch

    from studykit.toy import ensure_built, load
    from studykit.probes.toy_report import alignment_report

    torch.set_num_threads(1)
    start = time.perf_counter()
    ensure_built(name, progress=False)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    report = alignment_report(*load(name), n_problems=n_problems, n_samples=n_samples)
    return {"preset": name, "build_s": round(build_s, 1), "eval_s": round(time.perf_counter() - start, 1), **report}


def table(rows: list[dict]) -> str:
    head = "| preset | build_s | pass@1 | pass@4 | pass@16 | pass@32 | format rate | method shares (sum/count/max/other) | in band |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        ms = r["method_shares"]
        shares = "/".join(f"{ms[m]:.2f}" for m in ("sum", "count", "max", "other"))
        ks = " | ".join(f"{r.get(f'pass@{k}', float('nan')):.3f}" for k in (1, 4, 16, 32))
        ok = "yes" if in_band(r["preset"], r) else "NO"
        lines.append(f"| {r['preset']} | {r['build_s']:.0f} | {ks} | {r['format_rate']:.3f} | {shares} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="cache folder (default: a fresh temp dir)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--n-problems", type=int, default=256)
    ap.add_argument("--n-samples", type=int, default=32)
    ap.add_argument("--presets", nargs="+", default=["strong", "weak-method", "weak-skill"])
    args = ap.parse_args(argv)
    cache = args.cache or tempfile.mkdtemp(prefix="studykit-toy-bench-")
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        n = len(args.presets)
        rows = list(pool.map(build_and_measure, args.presets, [cache] * n, [args.n_problems] * n, [args.n_samples] * n))
    print(table(rows))
    print(f"\ncache: {cache}; total wall {time.perf_counter() - start:.0f} s; bands: {BANDS}\n")
    keys = ("preset", "build_s", "pass@1", "pass@16", "format_rate", "method_shares")
    for r in rows:
        print(json.dumps({k: r[k] for k in keys}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
