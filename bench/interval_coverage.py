"""Coverage of the verdict's 95% ratio interval, before and after issue 20, and what the new rule would say about a
published report whose per-problem tables are gone:

    .venv/bin/python bench/interval_coverage.py [--tiny] [--studies 1000] [--report reports/toy/verdicts.json]

1. Simulated studies (tests/interval_sim.py: paired claim / ground-truth tables, 128 problems with a shared problem
   effect, per-problem noise sd 0.15, true ratio 0.4) at 2, 3 and 5 seeds and seed sd 0.02 and 0.10, in both forms of
   the shared problem effect: coverage and median width of the former seed bootstrap (`old`) and of
   `metrics.paired_ratio_interval` (`new`). `--tiny`: 100 studies, 300 replicates, for a smoke run.
2. `--report`: an offline estimate of each claim row's new interval from what verdicts.json stores. The seed layer
   is exact (the per-seed deltas of claim and ground truth are stored); the problem layer is reconstructed from the
   old intervals: old variance (width / 3.92)^2 minus the old seed bootstrap's share ((S - 1) / S^2 of the per-seed
   variance), for the claim, ground truth and the ratio, as a bivariate normal (their covariance from the ratio's).
   An approximation: it still holds the seed-by-problem noise the new method counts once, so it errs wide.
   For each row the new rule leaves uncertain it also prints `seeds`: the fewest seeds (up to 20) at which the
   interval, linearised, would clear every threshold if the point ratio and the per-seed spread stayed as observed
   (a projection for planning a study, not a result), and the ground-truth rows' approximate new delta interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from interval_sim import coverage, new_interval, old_interval  # noqa: E402

from studykit.analysis.verdicts import judge, thresholds_of  # noqa: E402

T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093)  # Student t 0.975 quantiles, 1..19 degrees of freedom


def simulate(studies: int, n_boot: int) -> None:
    print(f"{studies} simulated studies per setting, {n_boot} replicates per interval; nominal 95%")
    print(f"{'shared effect':>13} {'seeds':>5} {'seed sd':>7} | {'old cover':>9} {'old width':>9} | "
          f"{'new cover':>9} {'new width':>9} | s")
    for shared in ("proportional", "additive"):
        for seeds in (2, 3, 5):
            for sd in (0.02, 0.10):
                t0 = time.perf_counter()
                old = coverage(old_interval, seeds, sd, studies, n_boot, rng_seed=seeds, shared=shared)
                new = coverage(new_interval, seeds, sd, studies, n_boot, rng_seed=seeds, shared=shared)
                print(f"{shared:>13} {seeds:>5} {sd:>7.2f} | {old[0]:>9.3f} {old[1]:>9.2f} | {new[0]:>9.3f} "
                      f"{new[1]:>9.2f} | {time.perf_counter() - t0:.0f}")


def _problem_var(lo: float, hi: float, per_seed: np.ndarray) -> float:
    """Problem-layer variance left when the old seed bootstrap's share is taken out of the old interval's."""
    s = len(per_seed)
    return max(0.0, ((hi - lo) / 3.92) ** 2 - (s - 1) / s ** 2 * per_seed.var(ddof=1))


def new_ratio_interval(rec: dict, n_draw: int = 200_000, seed: int = 0) -> tuple[float, float, float, float]:
    """(lo, hi) of the approximate new interval and (lo, hi) of its seed layer alone, from one verdicts.json record."""
    c, g = np.asarray(rec["delta_pass1_per_seed"]), np.asarray(rec["gt_delta_pass1_per_seed"])
    s, ratio = len(c), rec["ratio"]
    rng = np.random.default_rng(seed)
    dev = np.stack([c - c.mean(), g - g.mean()])
    seed_layer = (rng.standard_normal((n_draw, s)) @ dev.T).T / np.sqrt(s * (s - 1))
    seed_layer *= np.sqrt((s - 1) / rng.chisquare(s - 1, size=n_draw))
    vc = _problem_var(rec["delta_lo"], rec["delta_hi"], c)
    vg = _problem_var(rec["gt_delta_lo"], rec["gt_delta_hi"], g)
    lin = (c - ratio * g) / g.mean()  # the ratio's per-seed linearisation, for its old seed share
    vr = _problem_var(rec["ratio_lo"], rec["ratio_hi"], lin) * g.mean() ** 2  # var of (claim - R gt)'s problem part
    cov = (vc + ratio ** 2 * vg - vr) / (2 * ratio) if ratio else 0.0
    cov = float(np.clip(cov, -np.sqrt(vc * vg), np.sqrt(vc * vg)))
    problem = rng.multivariate_normal([0.0, 0.0], [[vc, cov], [cov, vg]], size=n_draw).T
    out = []
    for layers in (seed_layer + problem, seed_layer):
        cb, gb = c.mean() + layers[0], g.mean() + layers[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(gb > 0, cb / gb, np.where(cb > 0, np.inf, -np.inf))
        out += list(np.quantile(r, [0.025, 0.975], method="inverted_cdf"))
    return tuple(float(v) for v in out)


def seeds_needed(rec: dict, th) -> int | None:
    """Fewest seeds at which mean +- (t_{S-1} seed part, 1.96 problem part) clears the thresholds, or None (> 20)."""
    c, g = np.asarray(rec["delta_pass1_per_seed"]), np.asarray(rec["gt_delta_pass1_per_seed"])
    ratio = rec["ratio"]
    lin = (c - ratio * g) / g.mean()
    v_prob = _problem_var(rec["ratio_lo"], rec["ratio_hi"], lin)
    for n in range(2, 21):
        half = np.sqrt(T975[n - 2] ** 2 * lin.var(ddof=1) / n + 1.96 ** 2 * v_prob)
        if not judge(ratio - half, ratio + half, th).startswith("uncertain"):
            return n
    return None


def report(path: Path) -> None:
    meta = json.loads(path.read_text())
    th = thresholds_of(meta.get("thresholds"))
    print(f"\n{path}: rows with an interval; `new` = approximate new interval, `seed only` = its exact seed layer")
    print(f"{'claim':>18} {'model':>16} | {'old interval':>16} {'old':>9} | {'new interval':>16} {'new':>9} | "
          f"{'seed only':>16} {'word':>9} | seeds")
    changed, needs = 0, []
    for rec in meta["records"]:
        if rec["ratio_lo"] is None or len(rec["delta_pass1_per_seed"]) < 2:
            continue
        lo, hi, slo, shi = new_ratio_interval(rec)
        new, seed_only = judge(lo, hi, th), judge(slo, shi, th)
        changed += new != rec["verdict"]
        need = seeds_needed(rec, th) if new == "uncertain" else None
        needs += [need] if new == "uncertain" else []
        mark = "*" if new != rec["verdict"] else ""
        print(f"{rec['claim']:>18} {rec['model']:>16} | [{rec['ratio_lo']:6.2f}, {rec['ratio_hi']:6.2f}] "
              f"{rec['verdict']:>9} | [{lo:6.2f}, {hi:6.2f}] {new:>9} | [{slo:6.2f}, {shi:6.2f}] {seed_only:>9} | "
              f"{'' if new != 'uncertain' else need or '>20'}{mark}")
    print(f"{changed} rows change word (*); {len(needs)} uncertain under the new rule; projected seeds to decide "
          f"them: " + ", ".join(f"{n or '>20'}: {needs.count(n)}" for n in sorted(set(needs), key=lambda n: n or 99)))
    for rec in meta["records"]:
        if rec["verdict"] == "baseline" and len(rec["delta_pass1_per_seed"]) >= 2:
            d = np.asarray(rec["delta_pass1_per_seed"])
            rng = np.random.default_rng(0)
            draws = (rng.standard_normal((200_000, len(d))) @ (d - d.mean())) / np.sqrt(len(d) * (len(d) - 1))
            draws *= np.sqrt((len(d) - 1) / rng.chisquare(len(d) - 1, size=200_000))
            draws += rng.normal(0.0, np.sqrt(_problem_var(rec["delta_lo"], rec["delta_hi"], d)), size=200_000)
            lo, hi = np.quantile(d.mean() + draws, [0.025, 0.975])
            print(f"baseline {rec['claim']} on {rec['model']}: delta {d.mean():+.3f}, old [{rec['delta_lo']:.3f}, "
                  f"{rec['delta_hi']:.3f}], new ~[{lo:.3f}, {hi:.3f}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="100 studies, 300 replicates: a smoke run")
    ap.add_argument("--studies", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--report", type=Path, help="a verdicts.json: estimate its rows' new intervals offline")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulation (with --report)")
    args = ap.parse_args()
    if not args.no_sim:
        simulate(*(100, 300) if args.tiny else (args.studies, args.n_boot))
    if args.report is not None:
        if not args.report.is_file():
            raise SystemExit(f"--report: no file {args.report} (expected a verdicts.json written by studykit report)")
        report(args.report)


if __name__ == "__main__":
    main()
