"""Final diagnostic shares (studykit.analysis.shares): per-seed dominant category and means, from a synthetic run table."""

from __future__ import annotations

import json

import pandas as pd

from studykit.analysis import shares


def _run(rq, claim, seed, sum_, count, model="m1"):
    return {"rq": rq, "claim": claim.partition("@")[0], "condition": claim, "model": model, "task": "toy", "seed": str(seed), "params.eval.sets": None,
            "metrics.eval/toy/pass_at_1": 0.5, "metrics.eval/toy/method_share/sum": sum_,
            "metrics.eval/toy/method_share/count": count, "metrics.eval/other/method_share/sum": 0.99}


def test_final_shares_counts_each_seeds_winner_and_skips_other_sets():
    runs = pd.DataFrame([_run("ablation", "random@mb4x4", 0, 0.9, 0.1), _run("ablation", "random@mb4x4", 1, 0.2, 0.8),
                         _run("ablation", "random@mb4x4", 2, 0.1, 0.9), _run("alignment", "alignment", 0, 0.5, 0.5),
                         _run("report", "x", 0, 1.0, 0.0), _run("rq1", "random", 0, 0.3, 0.7)])
    records = {r["claim"]: r for r in shares.final_shares(runs)}
    assert set(records) == {"random@mb4x4", "random", shares.BASE}  # an ablation keeps its own row; no report run
    rec = records["random@mb4x4"]
    assert rec["n_seeds"] == 3 and rec["dominant"] == {"count": 2, "sum": 1}
    assert abs(rec["mean"]["sum"] - 0.4) < 1e-9 and rec["max_share_per_seed"] == [0.8, 0.9, 0.9]


def test_write_and_remove_stale(tmp_path):
    runs = pd.DataFrame([_run("rq1", "random", 0, 0.7, 0.3)])
    paths = shares.write(runs, tmp_path)
    assert [p.name for p in paths] == ["shares.json", "shares.md"]
    assert json.loads(paths[0].read_text())[0]["dominant"] == {"sum": 1}
    assert "| random | m1 | toy | 1 | 0.30 | 0.70 | sum x1 | 0.70 |" in paths[1].read_text()
    bare = runs.drop(columns=[c for c in runs.columns if "method_share" in c])
    assert shares.write(bare, tmp_path) == [] and not (tmp_path / "shares.md").exists()
