"""Verdict table, verdicts.json and report files on fake runs logged into a temporary MLflow store."""

from __future__ import annotations

import json
import math

import pytest

from studykit import analysis

STUDY = "fake"
PASS = "eval/toy/pass_at_{k}"  # MLflow forbids "@" in metric names; analysis accepts the usual spellings
P1 = PASS.format(k=1)
# (model, claim, rq, seed) -> pass@1 curve at steps 0, 10, 20
CURVES = {
    ("toy:strong", "ground_truth", "rq1", 0): [0.50, 0.70, 0.80],
    ("toy:strong", "ground_truth", "rq1", 1): [0.50, 0.72, 0.80],
    ("toy:strong", "random", "rq1", 0): [0.50, 0.90, 0.75],       # delta .25, ratio .83 -> holds, peak .4 @ 10
    ("toy:strong", "random", "rq1", 1): [0.50, 0.90, 0.75],
    ("toy:strong", "nsr", "rq3", 0): [0.50, 0.60, 0.65],          # ratio .5 -> partial
    ("toy:strong", "one_shot", "rq2", 0): [0.50, 0.51, 0.52],     # ratio .067 -> fails
    ("toy:weak-method", "ground_truth", "rq1", 0): [0.10, 0.25, 0.40],
    ("toy:weak-method", "random", "rq1", 0): [0.10, 0.12, 0.11],  # ratio .033 -> fails
    ("toy:weak-skill", "ground_truth", "rq1", 0): [0.20, 0.20, 0.205],  # gt flat
    ("toy:weak-skill", "random", "rq1", 0): [0.20, 0.30, 0.40],
}
RECORD_KEYS = {"claim", "model", "task", "base_pass1", "delta_pass1_per_seed", "delta_pass1", "peak_delta_pass1",
               "peak_step", "ratio_to_gt", "verdict"}


def _log(client, exp, tags, metrics, status="FINISHED"):
    from mlflow.entities import Metric

    run = client.create_run(exp, tags=tags)
    batch = [Metric(k, v, 0, step) for k, series in metrics.items() for step, v in series]
    client.log_batch(run.info.run_id, metrics=batch, params=[])
    client.log_param(run.info.run_id, "eval.sets", json.dumps([{"task": "toy", "split": "test"}]))
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def _tags(model, claim, rq, seed, condition=None, alignment="strong (pass@16=0.98)"):
    return {"study": STUDY, "rq": rq, "claim": claim, "condition": condition or claim, "model": model, "task": "toy",
            "seed": str(seed), "alignment": alignment, "config_hash": f"{model}{claim}{seed}{condition}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(STUDY, artifact_location=(root / "artifacts").as_uri())
    for (model, claim, rq, seed), curve in CURVES.items():
        steps = list(zip((0, 10, 20), curve))
        metrics = {P1: steps, "train/accuracy": [(s, v - 0.05) for s, v in steps[1:]],
                   "train/clip_frac": [(20, 0.01)], "train/format_rate": [(20, 0.9)],
                   "train/method_share/sum": [(20, 0.6)]}
        _log(client, exp, _tags(model, claim, rq, seed), metrics)
    # excluded: a failed run with a huge gain, and an ablation with its own baseline
    _log(client, exp, _tags("toy:strong", "nsr", "rq3", 1), {P1: [(0, 0.5), (20, 1.0)]}, "FAILED")
    for claim, curve in (("ground_truth", [0.5, 0.6]), ("random", [0.5, 0.55])):
        _log(client, exp, _tags("toy:strong", claim, "ablation", 0, f"{claim}@mb4x4"),
             {P1: list(zip((0, 20), curve))})
    for model, p16 in (("toy:strong", 0.98), ("toy:weak-method", 0.4)):
        _log(client, exp, _tags(model, "alignment", "alignment", 0),
             {PASS.format(k=k): [(0, p16 * k / 16)] for k in (1, 4, 16)})
    return uri


@pytest.fixture(scope="module")
def table(store):
    runs = analysis.load_runs(STUDY, store)
    return analysis.verdict_table(runs, analysis.histories(runs, store))


def _row(table, claim, model="toy:strong"):
    rows = table[(table["claim"] == claim) & (table["model"] == model)]
    assert len(rows) == 1, f"expected one row for {claim} on {model}, got {len(rows)}"
    return rows.iloc[0]


def test_load_runs_keeps_finished_runs_with_tags_as_columns(store):
    runs = analysis.load_runs(STUDY, store)
    assert len(runs) == len(CURVES) + 2 + 2  # the FAILED run is left out
    assert {"claim", "model", "seed", "rq", "alignment", "metrics." + P1} <= set(runs.columns)
    assert analysis.load_runs("no-such-study", store).empty


def test_verdicts_follow_the_rule(table):
    assert _row(table, "random")["verdict"] == "holds"
    assert _row(table, "nsr")["verdict"] == "partial"
    assert _row(table, "one_shot")["verdict"] == "fails"
    assert _row(table, "ground_truth")["verdict"] == "baseline"
    assert _row(table, "random", "toy:weak-method")["verdict"] == "fails"
    assert _row(table, "random", "toy:weak-skill")["verdict"] == "n/a (gt flat)"


def test_deltas_peaks_and_ratios(table):
    row = _row(table, "random")
    assert row["delta_pass1_per_seed"] == pytest.approx([0.25, 0.25])
    assert row["delta_pass1"] == pytest.approx(0.25)
    assert row["peak_delta_pass1"] == pytest.approx(0.40)
    assert row["peak_step"] == 10
    assert row["ratio_to_gt"] == pytest.approx(0.25 / 0.30)
    assert row["base_pass1"] == pytest.approx(0.5)
    assert _row(table, "nsr")["delta_pass1_per_seed"] == pytest.approx([0.15])  # the FAILED seed is not counted
    assert row["alignment"].startswith("strong")
    assert row["train/clip_frac"] == pytest.approx(0.01)


def test_ablation_rows_use_their_own_baseline(table):
    row = _row(table, "random@mb4x4")
    assert row["ratio_to_gt"] == pytest.approx(0.05 / 0.10)
    assert row["verdict"] == "partial"


def test_thresholds_are_configurable_and_checked(store):
    runs = analysis.load_runs(STUDY, store)
    hist = analysis.histories(runs, store)
    strict = analysis.verdict_table(runs, hist, {"holds": 0.9, "partial": 0.6, "min_effect": 0.0})
    assert _row(strict, "random")["verdict"] == "partial"
    assert _row(strict, "random", "toy:weak-skill")["verdict"] == "holds"  # gt gain .005 now counts
    with pytest.raises(ValueError, match="holds"):
        analysis.verdict_table(runs, hist, {"holds": "high"})
    with pytest.raises(ValueError, match="holdz"):
        analysis.verdict_table(runs, hist, {"holdz": 0.5})


def test_write_report_files_and_report_run(store, tmp_path):
    report = analysis.write_report(STUDY, uri=store, out_dir=tmp_path)
    folder = tmp_path / STUDY
    records = json.loads((folder / "verdicts.json").read_text())
    assert len(records) == len(report.table)
    for rec in records:
        assert RECORD_KEYS <= set(rec) <= RECORD_KEYS | {"alignment"}
        assert isinstance(rec["delta_pass1_per_seed"], list)
        assert rec["ratio_to_gt"] is None or not math.isnan(rec["ratio_to_gt"])
    md = (folder / "verdicts.md").read_text()
    assert "Rule:" in md and "0.7" in md
    assert "**one_shot** on toy:strong" in md and "clip_frac=0.01" in md
    assert {p.name for p in folder.glob("*.png")} == {"pass_at_k.png", "training_accuracy.png", "ratio_to_gt.png"}
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=store).get_run(report.run_id)
    assert run.data.tags["rq"] == "report" and run.info.status == "FINISHED"
    # the report run is not a claim: a second report has the same table
    again = analysis.write_report(STUDY, uri=store, out_dir=tmp_path, figures=False, log_to_mlflow=False)
    assert len(again.table) == len(report.table)


def test_write_report_on_unknown_study_is_a_clear_error(store, tmp_path):
    with pytest.raises(ValueError, match="no FINISHED runs"):
        analysis.write_report("nothing-here", uri=store, out_dir=tmp_path)


@pytest.mark.parametrize("key", ["eval/toy/pass@4", "eval/toy/pass_at_4", "eval/toy/pass_4", "eval/toy/pass.4"])
def test_pass_keys_in_every_spelling(key):
    assert analysis.parse_pass_key(key) == ("toy", 4)


def test_non_pass_keys_are_not_parsed():
    assert analysis.parse_pass_key("eval/toy/avg_at_16") is None
    assert analysis.parse_pass_key("train/accuracy") is None
