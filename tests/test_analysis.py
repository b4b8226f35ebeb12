"""Verdict table, verdicts.json and report files on fake runs logged into a temporary MLflow store (the real MLflow,
sqlite): one run per study cell, with per-problem counts artifacts as the trainer logs them, plus stale runs that
must change nothing."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from studykit.analysis import report as analysis, verdicts
from studykit.analysis import verdict_text
from studykit.scoring import metrics
from studykit.config.schema import validate
from studykit.engine.evaluation import EvalResult, counts_artifact
from studykit.tracking.experiment import run_tags

STUDY = "fake"
P, N = 100, 8  # problems per eval set, samples per problem
IDS = [f"toy-{i}" for i in range(P)]
PASS = "eval/toy/pass_at_{k}"
P1 = PASS.format(k=1)
KS = (1, 4, 8)
BASE = {"toy:strong": 4, "toy:weak-method": 1, "toy:weak-skill": 2}  # step-0 correct count of every problem
# (model, claim, condition, rq, seed) -> per-problem gain in correct counts: [(how many problems, gain), ...]
GAINS = {
    ("toy:strong", "ground_truth", "ground_truth", "rq1", 0): [(100, 2)],    # +0.25
    ("toy:strong", "ground_truth", "ground_truth", "rq1", 1): [(90, 2), (10, 1)],  # +0.2375: close to seed 0
    ("toy:strong", "random", "random", "rq1", 0): [(90, 2)],                 # 0.9 of gt, seed by seed -> holds
    ("toy:strong", "random", "random", "rq1", 1): [(85, 2), (1, 1)],
    ("toy:strong", "nsr", "nsr", "rq3", 0): [(100, 1)],                      # seed 1 missing: 0.5 of gt seed 0
    ("toy:strong", "psr", "psr", "rq3", 0): [(75, 2), (25, -4)],             # 0.25, wide interval; pass@8 -0.25
    ("toy:strong", "psr", "psr", "rq3", 1): [(75, 2), (25, -4)],
    ("toy:strong", "one_shot", "one_shot", "rq2", 0): [(10, 2)],             # 0.1 -> fails
    ("toy:strong", "one_shot", "one_shot", "rq2", 1): [(10, 2)],
    ("toy:strong", "one_shot", "one_shot", "rq2", 2): [(100, 4)],            # gt seed 2 missing: left out
    ("toy:strong", "ground_truth", "ground_truth@mb4x4", "ablation", 0): [(100, 1)],
    ("toy:strong", "ground_truth", "ground_truth@mb4x4", "ablation", 1): [(100, 1)],
    ("toy:strong", "random", "random@mb4x4", "ablation", 0): [(50, 1)],      # 0.5 of its own baseline
    ("toy:strong", "random", "random@mb4x4", "ablation", 1): [(50, 1)],
    ("toy:strong", "random", "random@noclip", "ablation", 0): [(50, 2)],     # no gt@noclip: 0.5 of plain gt; 1 seed
    ("toy:weak-method", "ground_truth", "ground_truth", "rq1", 0): [(100, 1)],
    ("toy:weak-method", "ground_truth", "ground_truth", "rq1", 1): [(100, 1)],
    ("toy:weak-method", "random", "random", "rq1", 0): [(5, 1)],             # 0.05 -> fails
    ("toy:weak-method", "random", "random", "rq1", 1): [(5, 1)],
    ("toy:weak-skill", "ground_truth", "ground_truth", "rq1", 0): [(3, 6)],  # +0.0225 on 3 problems: not significant
    ("toy:weak-skill", "ground_truth", "ground_truth", "rq1", 1): [(3, 6)],
    ("toy:weak-skill", "random", "random", "rq1", 0): [(100, 1)],            # would be 5.6x gt: n/a
    ("toy:weak-skill", "random", "random", "rq1", 1): [(100, 1)],
}
NO_COUNTS = ("toy:weak-method", "format", "format", "rq1", 0)  # a run from older code: metrics only, +0.1
MISSING = [("toy:strong", "nsr", "nsr", "rq3", 1), ("toy:strong", "ground_truth", "ground_truth", "rq1", 2)]
ALIGN = {"toy:strong": 0.98, "toy:weak-method": 0.4, "toy:weak-skill": None}  # None: the cell has no run yet
RECORD_KEYS = set(analysis.RECORD_FIELDS)


def _cfg(model, claim, condition, rq, seed, **extra):
    return validate({"study": STUDY, "rq": rq, "claim": claim, "condition": condition, "model": {"name": model},
                     "train": {"seed": seed, **extra},
                     "eval": {"n_samples": N, "ks": list(KS), "sets": [{"task": "toy", "limit": P}]}})


def _counts(model, gains):
    before = np.full(P, BASE[model])
    after, i = before.copy(), 0
    for count, gain in gains:
        after[i:i + count] += gain
        i += count
    return before, np.clip(after, 0, N)


def _log(client, exp, cfg, history, counts=None, status="FINISHED", start=None, alignment="strong (pass@8=0.98)"):
    """history: metric -> [(step, value)]; counts: step -> per-problem correct counts (logged as the trainer does)."""
    from mlflow.entities import Metric

    run = client.create_run(exp, tags=run_tags(cfg, alignment), start_time=start)
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric(k, v, 0, s) for k, series in history.items() for s, v in series])
    client.log_param(rid, "eval.sets", json.dumps([{"task": "toy", "split": "test"}]))
    for step, c in (counts or {}).items():
        client.log_dict(rid, EvalResult("toy", N, np.asarray(c), {}, IDS).counts_record(step),
                        counts_artifact("toy", step))
    client.set_terminated(rid, status)
    return rid


def _history(before, after, mid=None):
    curve = {}
    for k in KS:
        b, a = (metrics.pass_at_k_curve(x, N, [k])[k] for x in (before, after))
        curve[PASS.format(k=k)] = [(0, b), (20, a)] if k > 1 else [(0, b), (10, (b + a) / 2 if mid is None else mid),
                                                                    (20, a)]
    curve.update({"train/accuracy": [(10, 0.3), (20, 0.4)], "train/clip_frac": [(20, 0.01)],
                  "train/format_rate": [(20, 0.9)], "train/method_share/sum": [(20, 0.6)]})
    return curve


def _build(client, exp):
    """Log every current cell's run and the stale runs; return the cells (RunConfigs) in study order."""
    cells = [_cfg(m, "alignment", "alignment", "alignment", 0) for m in ALIGN]
    now = int(time.time() * 1000)
    for model, p16 in ALIGN.items():
        if p16 is not None:
            _log(client, exp, cells[list(ALIGN).index(model)], {PASS.format(k=k): [(0, p16 * k / 8)] for k in KS},
                 alignment=f"x (pass@8={p16})")
    for key, gains in GAINS.items():
        cfg = _cfg(*key)
        cells.append(cfg)
        before, after = _counts(key[0], gains)
        mid = 0.9 if key[1:3] == ("random", "random") and key[0] == "toy:strong" else None  # the peak
        counts = {0: before, 20: after}
        if mid is not None:
            counts[10] = np.full(P, N)  # a middle evaluation: the verdict uses the first and the last only
        _log(client, exp, cfg, _history(before, after, mid), counts, start=now)
    cells.append(cfg := _cfg(*NO_COUNTS))
    _log(client, exp, cfg, {P1: [(0, 0.125), (10, 0.2), (20, 0.225)]}, start=now)
    cells += [_cfg(*key) for key in MISSING]
    # Stale runs: none of them may change anything.
    huge = _history(np.full(P, 0), np.full(P, N))
    _log(client, exp, _cfg(*MISSING[0]), huge, {0: np.full(P, 0), 20: np.full(P, N)}, status="FAILED")
    _log(client, exp, _cfg("toy:strong", "random", "random", "rq1", 0, lr=1e-4), huge,  # an edited config, newer
         {0: np.full(P, 0), 20: np.full(P, N)}, start=now + 1000)
    _log(client, exp, _cfg("toy:strong", "self_certainty", "self_certainty", "rq1", 0), huge,  # a dropped cell
         {0: np.full(P, 0), 20: np.full(P, N)}, start=now)
    flat = _history(np.full(P, 4), np.full(P, 4))
    _log(client, exp, _cfg("toy:strong", "ground_truth", "ground_truth", "rq1", 0), flat,  # same cell, older run
         {0: np.full(P, 4), 20: np.full(P, 4)}, start=now - 86_400_000)
    return cells


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(STUDY, artifact_location=(root / "artifacts").as_uri())
    return uri, _build(client, exp)


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    uri, cells = store
    return analysis.write_report(STUDY, cells, uri=uri, out_dir=tmp_path_factory.mktemp("reports"))


def _row(table, claim, model="toy:strong"):
    rows = table[(table["claim"] == claim) & (table["model"] == model)]
    assert len(rows) == 1, f"expected one row for {claim} on {model}, got {len(rows)}"
    return rows.iloc[0]


# ------------------------------------------------------------------------------------- item 1: the current cells


def test_only_the_current_cells_runs_count_newest_first(store):
    uri, cells = store
    sel = analysis.load_runs(STUDY, cells, uri)
    assert sel.n_cells == len(cells) and len(sel.runs) == len(cells) - 3
    assert set(sel.runs["config_hash"]) <= {c.config_hash() for c in cells}
    assert sel.missing == ["alignment-alignment-weak-skill-toy-s0", "nsr-nsr-strong-toy-s1",
                           "ground_truth-ground_truth-strong-toy-s2"]
    gt0 = sel.runs[sel.runs["config_hash"] == _cfg(*list(GAINS)[0]).config_hash()]
    assert len(gt0) == 1 and gt0.iloc[0]["metrics." + P1] == pytest.approx(0.75)  # not the older, flat run


def test_stale_runs_change_nothing(report):
    table = report.table
    assert "self_certainty" not in set(table["claim"])  # a run of a cell the study no longer has
    row = _row(table, "random")
    assert row["delta_pass1_per_seed"] == pytest.approx([0.225, 0.21375])  # not the edited config's +1.0
    assert _row(table, "ground_truth")["delta_pass1_per_seed"] == pytest.approx([0.25, 0.2375])  # not the older run
    assert _row(table, "nsr")["seeds"] == [0]  # the FAILED seed-1 run does not count


def test_missing_cells_are_reported(report):
    folder = report.out_dir
    meta = json.loads((folder / "verdicts.json").read_text())
    assert meta["missing"] == {"count": 3, "cells": report.missing} and meta["cells"] == report.n_cells
    md = (folder / "verdicts.md").read_text()
    assert f"missing: 3 of {report.n_cells} cells" in md and "nsr-nsr-strong-toy-s1" in md



def test_a_study_with_no_finished_run_says_to_run_it_first(tmp_path):
    cells = [_cfg(*list(GAINS)[0])]
    with pytest.raises(ValueError, match=r"none of its 1 cells has a FINISHED run.*run the study first"):
        analysis.write_report(STUDY, cells, uri=f"sqlite:///{tmp_path / 'empty.db'}", out_dir=tmp_path / "out")



@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_reporting_a_failed_study_leaves_its_parent_run_failed(tmp_path, status):
    from mlflow.tracking import MlflowClient

    from studykit.tracking.experiment import study_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(STUDY, artifact_location=(tmp_path / "artifacts").as_uri())
    cells = _build(client, exp)
    parent = study_run(STUDY, uri=uri)
    client.set_terminated(parent, status)  # what the study runner does when a cell failed or it was interrupted
    report = analysis.write_report(STUDY, cells, uri=uri, out_dir=tmp_path / "out", log_to_mlflow=True)
    assert report.run_id == parent and client.get_run(parent).info.status == status


# ------------------------------------------------------------------------------------- items 2-3: paired intervals


def test_verdicts_follow_the_interval_rule(report):
    t = report.table
    assert _row(t, "random")["verdict"] == "holds"
    assert _row(t, "random@mb4x4")["verdict"] == "partial"
    assert _row(t, "psr")["verdict"] == "uncertain"
    assert _row(t, "one_shot")["verdict"] == "fails"
    assert _row(t, "ground_truth")["verdict"] == "baseline"
    assert _row(t, "random", "toy:weak-method")["verdict"] == "fails"
    for _, row in t[t["verdict"].isin(["holds", "partial", "fails", "uncertain"]) & t["ratio_lo"].notna()].iterrows():
        assert row["ratio_lo"] <= row["ratio"] <= row["ratio_hi"], row["claim"]
    psr = _row(t, "psr")
    assert psr["ratio_lo"] < 0.3 < psr["ratio_hi"]  # straddles `partial`
    assert 0.7 < _row(t, "random")["ratio_lo"] < 0.9 < _row(t, "random")["ratio_hi"] <= 1.0


def test_claims_are_paired_with_ground_truth_seed_by_seed(report):
    nsr = _row(report.table, "nsr")  # only seed 0 ran: compared with gt seed 0 (+0.25), not the gt mean (+0.24375)
    assert nsr["ratio"] == pytest.approx(0.5) and nsr["gt_delta_pass1_per_seed"] == pytest.approx([0.25])
    one = _row(report.table, "one_shot")  # its seed 2 has no gt run: left out, and said so
    assert one["seeds"] == [0, 1] and one["n_seeds"] == 2 and one["delta_pass1_per_seed"] == pytest.approx([0.025] * 2)
    assert "seeds [2]" in one["note"]
    rnd = _row(report.table, "random")
    assert rnd["seeds"] == [0, 1] and rnd["gt_delta_pass1_per_seed"] == pytest.approx([0.25, 0.2375])
    assert rnd["ratio"] == pytest.approx(0.9) and rnd["n_seeds"] == 2


def test_a_verdict_on_one_paired_seed_says_so(report):
    """Issue 20: one seed gives no estimate of the seed-to-seed variance, so no interval and no verdict word."""
    nsr = _row(report.table, "nsr")  # seed 1 of nsr is missing: one paired seed
    assert nsr["verdict"] == "uncertain (1 seed)" and nsr["n_seeds"] == 1 and nsr["seeds"] == [0]
    assert math.isnan(nsr["ratio_lo"]) and math.isnan(nsr["ratio_hi"]) and "one paired seed" in nsr["note"]
    assert _row(report.table, "random@noclip")["verdict"] == "uncertain (1 seed)"
    rec = next(r for r in json.loads((report.out_dir / "verdicts.json").read_text())["records"]
               if r["claim"] == "nsr")
    assert rec["n_seeds"] == 1 and rec["verdict"] == "uncertain (1 seed)" and rec["ratio_lo"] is None
    md = (report.out_dir / "verdicts.md").read_text()
    header = next(li for li in md.splitlines() if li.startswith("| claim |"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(verdict_text.MD_COLUMNS)
    line = next(li for li in md.splitlines() if li.startswith("| nsr | toy:strong"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[verdict_text.MD_COLUMNS.index("n_seeds")] == "1"
    assert cells[verdict_text.MD_COLUMNS.index("verdict")] == "uncertain (1 seed)"
    assert "**nsr** on toy:strong / toy (" in md  # listed among the claims that did not clearly reproduce


def test_ablations_use_their_own_baseline_else_plain_ground_truth(report):
    own = _row(report.table, "random@mb4x4")
    assert own["gt_delta_pass1"] == pytest.approx(0.125) and own["ratio"] == pytest.approx(0.5)
    assert own["verdict"] == "partial"
    fallback = _row(report.table, "random@noclip")  # seed 0 only: gt seed 0
    assert fallback["gt_delta_pass1"] == pytest.approx(0.25) and fallback["ratio"] == pytest.approx(0.5)
    assert _row(report.table, "ground_truth@mb4x4")["verdict"] == "baseline"


def test_no_ratio_when_ground_truth_did_not_gain_significantly(report):
    row = _row(report.table, "random", "toy:weak-skill")  # gt mean +0.0225 >= min_effect, but its interval reaches 0
    assert row["verdict"] == "n/a (gt flat)"
    assert math.isnan(row["ratio"]) and math.isnan(row["ratio_lo"]) and math.isnan(row["ratio_hi"])
    assert row["gt_delta_pass1"] == pytest.approx(0.0225) and row["gt_delta_lo"] == 0.0
    assert "did not gain" in _row(report.table, "ground_truth", "toy:weak-skill")["note"]
    rec = next(r for r in json.loads((report.out_dir / "verdicts.json").read_text())["records"]
               if r["claim"] == "random" and r["model"] == "toy:weak-skill")
    assert rec["ratio"] is None and rec["ratio_lo"] is None and rec["verdict"] == "n/a (gt flat)"
    line = next(li for li in (report.out_dir / "verdicts.md").read_text().splitlines()
                if li.startswith("| random | toy:weak-skill"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    ratio_at = list(verdict_text.MD_COLUMNS).index("ratio")
    assert cells[ratio_at:ratio_at + 3] == ["", "", ""]


def test_runs_without_counts_get_no_interval_and_say_so(report):
    row = _row(report.table, "format", "toy:weak-method")
    assert row["verdict"] == "uncertain" and row["ratio"] == pytest.approx(0.8) and math.isnan(row["ratio_lo"])
    assert "no per-problem counts" in row["note"]


def test_thresholds_are_configurable_and_checked(store, tmp_path):
    uri, cells = store
    sel = analysis.load_runs(STUDY, cells, uri)
    hist = analysis.histories(sel.runs, uri)
    counts = analysis.load_all_counts(sel.runs, uri)
    strict = analysis.verdict_table(sel.runs, hist, counts, {"holds": 0.99, "partial": 0.6, "min_effect": 0.0})
    assert _row(strict, "random")["verdict"] == "partial" and _row(strict, "one_shot")["verdict"] == "fails"
    assert _row(strict, "nsr")["verdict"] == "uncertain (1 seed)"
    assert _row(strict, "random", "toy:weak-skill")["verdict"] == "n/a (gt flat)"  # min_effect 0: interval still 0
    big = analysis.verdict_table(sel.runs, hist, counts, {"min_effect": 0.245})
    assert _row(big, "random")["verdict"] == "n/a (gt flat)"  # gt gains 0.24375 on seeds 0 and 1
    assert _row(big, "nsr")["verdict"] == "uncertain (1 seed)"  # gt gains 0.25 on seed 0, its one paired seed
    with pytest.raises(ValueError, match="holds"):
        analysis.verdict_table(sel.runs, hist, counts, {"holds": "high"})
    with pytest.raises(ValueError, match="holdz"):
        analysis.verdict_table(sel.runs, hist, counts, {"holdz": 0.5})


# ------------------------------------------------------------------------------------- item 4: the pass@k spectrum


def test_the_change_at_the_largest_k_is_reported(report):
    psr = _row(report.table, "psr")
    assert psr["k_max"] == 8 and psr["delta_pass_at_kmax"] == pytest.approx(-0.25)
    assert psr["delta_pass_at_kmax_hi"] < 0 < _row(report.table, "psr")["delta_pass1"]
    assert _row(report.table, "nsr")["delta_pass_at_kmax"] == pytest.approx(0.0)
    assert _row(report.table, "ground_truth")["delta_pass_at_kmax_per_seed"] == pytest.approx([0.0, 0.0])


def test_pass_at_k_before_and_after_training_frame(store):
    from studykit.analysis import figures

    uri, cells = store
    sel = analysis.load_runs(STUDY, cells, uri)
    frame = figures.trained_pass_at_k_frame(sel.runs, analysis.load_all_counts(sel.runs, uri))
    assert set(frame["model"]) == {"toy:strong"} and set(frame["claim"]) == {"ground_truth", "nsr", "psr"}
    psr = frame[frame["claim"] == "psr"].set_index(["stage", "k"])["pass@k"]
    before, after = _counts("toy:strong", GAINS[("toy:strong", "psr", "psr", "rq3", 0)])
    assert sorted(frame["k"].unique()) == [1, 2, 4, 8]
    for k in (1, 2, 4, 8):
        assert psr[("step 0", k)] == pytest.approx(metrics.pass_at_k_curve(before, N, [k])[k])
        assert psr[("final", k)] == pytest.approx(metrics.pass_at_k_curve(after, N, [k])[k])


# ------------------------------------------------------------------------------------- the report


def test_write_report_files_and_report_run(store, report, tmp_path):
    uri, cells = store
    folder = report.out_dir
    meta = json.loads((folder / "verdicts.json").read_text())
    assert {"study", "rule", "thresholds", "bootstrap", "cells", "runs", "missing", "records"} <= set(meta)
    assert meta["thresholds"] == {"holds": 0.7, "partial": 0.3, "min_effect": 0.02}
    assert meta["bootstrap"]["n_boot"] == 2000 and len(meta["records"]) == len(report.table)
    for rec in meta["records"]:
        assert set(rec) == RECORD_KEYS
        assert isinstance(rec["delta_pass1_per_seed"], list) and isinstance(rec["seeds"], list)
    text = (folder / "verdicts.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    md = (folder / "verdicts.md").read_text()
    assert "Rule:" in md and "0.7" in md and "bootstrap" in md
    assert "**one_shot** on toy:strong" in md and "clip_frac=0.01" in md
    assert {p.name for p in folder.glob("*.png")} == {"pass_at_k.png", "training_accuracy.png", "ratio_to_gt.png",
                                                       "pass_at_k_trained.png"}
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(report.run_id)
    assert run.data.tags["rq"] == "study" and run.info.status == "FINISHED"  # the study's parent run, made here
    # psr (straddles), format (no counts), nsr and random@noclip (one paired seed)
    assert run.data.metrics["report/missing"] == 3 and run.data.metrics["report/uncertain"] == 4
    again = analysis.write_report(STUDY, cells, uri=uri, out_dir=tmp_path, figures=False, log_to_mlflow=False)
    assert again.table.drop(columns="note").equals(report.table.drop(columns="note"))  # the report run is no cell


def test_write_report_without_runs_is_a_clear_error(store, tmp_path):
    uri, _ = store
    with pytest.raises(ValueError, match="none of its 1 cells has a FINISHED run"):
        analysis.write_report(STUDY, [_cfg("toy:strong", "random", "random", "rq1", 7)], uri=uri, out_dir=tmp_path)
    with pytest.raises(ValueError, match="no cells"):
        analysis.write_report(STUDY, [], uri=uri, out_dir=tmp_path)


@pytest.mark.parametrize("key", ["eval/toy/pass@4", "eval/toy/pass_at_4", "eval/toy/pass_4", "eval/toy/pass.4"])
def test_pass_keys_in_every_spelling(key):
    assert analysis.parse_pass_key(key) == ("toy", 4)


def test_non_pass_keys_are_not_parsed():
    assert analysis.parse_pass_key("eval/toy/avg_at_16") is None
    assert analysis.parse_pass_key("train/accuracy") is None


# ------------------------------------------------------------------------------------- pure rule, no MLflow


def test_judge_needs_the_whole_interval_on_one_side():
    th = verdicts.thresholds_of(None)
    assert verdicts.judge(0.7, 1.3, th) == "holds"
    assert verdicts.judge(0.65, 0.75, th) == "uncertain"  # straddles holds
    assert verdicts.judge(0.3, 0.69, th) == "partial"
    assert verdicts.judge(0.2, 0.4, th) == "uncertain"  # straddles partial
    assert verdicts.judge(-0.5, 0.29, th) == "fails"
    assert verdicts.judge(-np.inf, 2.0, th) == "uncertain"
    assert verdicts.judge(math.nan, math.nan, th) == "uncertain"


def test_ground_truth_must_gain_significantly():
    th = verdicts.thresholds_of({"min_effect": 0.02})
    assert verdicts.gt_gained(0.1, 0.01, th)
    assert not verdicts.gt_gained(0.1, 0.0, th)  # interval reaches 0
    assert not verdicts.gt_gained(0.015, 0.01, th)  # below min_effect
    assert verdicts.gt_gained(0.1, math.nan, th)  # no interval known: the mean decides


def test_verdict_table_is_pure_and_pairs_seeds():
    import pandas as pd

    from studykit.analysis.runs import Counts

    def run(rid, claim, seed):
        return {"run_id": rid, "rq": "rq1", "claim": claim, "condition": claim, "model": "m", "task": "toy",
                "seed": str(seed), "alignment": None, "metrics." + P1: 0.5}

    pre = np.array([2, 3, 4, 5] * 10)
    one_less = np.where(np.arange(40) < 4, 1, 2)  # seed 1 gains 1 on four problems, 2 elsewhere
    gains = {"g0": 2, "g1": one_less, "c0": 2, "c1": one_less}  # claim = gt on each seed: paired ratio exactly 1
    runs = pd.DataFrame([run("g0", "ground_truth", 0), run("g1", "ground_truth", 1), run("c0", "x", 0),
                         run("c1", "x", 1)])
    counts = {rid: {0: Counts(0, N, IDS[:40], pre), 5: Counts(5, N, IDS[:40], pre + g)} for rid, g in gains.items()}
    table = verdicts.verdict_table(runs, pd.DataFrame(columns=["run_id", "key", "step", "value"]), counts)
    row = table[table["claim"] == "x"].iloc[0]
    assert (row["ratio"], row["ratio_lo"], row["ratio_hi"]) == pytest.approx((1.0, 1.0, 1.0))
    assert row["verdict"] == "holds" and row["delta_pass1_per_seed"] == pytest.approx([0.25, 0.2375])


# ------------------------------------------------------------------------------------- the command line


def test_cli_report_takes_a_study_file_or_a_name(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    import yaml
    from mlflow.tracking import MlflowClient

    from studykit.cli import commands as cli
    from studykit.study.spec import expand

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "params/studies").mkdir(parents=True)
    path = tmp_path / "params/studies/clifake.yaml"
    path.write_text(yaml.safe_dump({
        "name": "clifake", "base": str(root / "params/toy/smoke_base.yaml"),
        "grid": {"models": ["toy:custom"], "tasks": ["toy"], "seeds": [0, 1]},
        "conditions": {"ground_truth": {"rq": "rq1"}, "random": {"rq": "rq1", "overrides": {"reward": {
            "name": "random"}}}},
        "compare": {"holds": 0.95}}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("clifake", artifact_location=(tmp_path / "artifacts").as_uri())
    for cell in expand(path):  # both seeds alike: the problem bootstrap alone decides
        before, after = _counts("toy:strong", [(100, 2)] if cell.config.claim == "ground_truth" else [(90, 2)])
        _log(client, exp, cell.config, _history(before, after), {0: before, 20: after})
    out = tmp_path / "reports"
    assert cli.main(["report", str(path), "--uri", uri, "--out", str(out)]) == 0
    meta = json.loads((out / "clifake/verdicts.json").read_text())
    assert meta["thresholds"]["holds"] == 0.95  # the study file's compare section
    assert {r["claim"]: r["verdict"] for r in meta["records"]} == {"ground_truth": "baseline", "random": "uncertain"}
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "clifake", "--uri", uri, "--out", str(out), "--holds", "0.7"]) == 0
    meta = json.loads((out / "clifake/verdicts.json").read_text())
    assert {r["claim"]: r["verdict"] for r in meta["records"]}["random"] == "holds"
    capsys.readouterr()
    assert cli.main(["report", "no-such-study", "--uri", uri]) == 2
    err = capsys.readouterr().err
    assert "no-such-study" in err and "params/studies/no-such-study.yaml" in err and "clifake" in err
