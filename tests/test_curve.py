"""The alignment curve in `studykit report`, on a small synthetic store: four labelled levels of one axis whose
claim ratios are 0, 0.25, 1 and 1, so the claim turns `holds` between the second and third level."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_analysis import KS, N, P, PASS, _history, _log

from studykit.analysis import report as analysis
from studykit.analysis.thresholds import CROSSES
from studykit.config.schema import validate

LEVELS = {"lvl-1": 0.05, "lvl-2": 0.15, "lvl-3": 0.35, "lvl-4": 0.55}  # pass@1 of each base model
CLAIM_GAIN = {"lvl-1": 0, "lvl-2": 25, "lvl-3": 100, "lvl-4": 100}  # problems (of 100) that gain 2 counts
SEEDS = (0, 1, 2)


def _knobs(share):
    """Each level its own recipe: a label alone is not a different model (it is not in the config hash)."""
    return {"sum_share": share, "count_share": round(0.6 * (1 - share), 4), "max_share": round(0.4 * (1 - share), 4)}


def _cfg(level, claim, rq, seed):
    return validate({"study": "curve", "rq": rq, "claim": claim, "condition": claim, "train": {"seed": seed},
                     "model": {"name": "toy:custom", "label": level, "toy": _knobs(LEVELS[level])},
                     "eval": {"n_samples": N, "ks": list(KS), "sets": [{"task": "toy", "limit": P}]}})


@pytest.fixture(scope="module")
def curve_report(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("curve")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("curve", artifact_location=(root / "artifacts").as_uri())
    cells = []
    for level, p1 in LEVELS.items():
        cfg = _cfg(level, "alignment", "alignment", 0)
        cells.append(cfg)
        _log(client, exp, cfg, {PASS.format(k=k): [(0, min(1.0, p1 * k))] for k in KS},
             alignment=f"weak (pass@8={min(1.0, p1 * 8):.2f})")
        rng = np.random.default_rng(len(cells))
        for seed in SEEDS:
            before = np.full(P, 2)
            for claim, gain in (("ground_truth", 100), ("random", CLAIM_GAIN[level])):
                after = before.copy()
                after[:gain] += 2
                after = np.clip(after + (rng.random(P) < 0.1), 0, N)  # a little per-problem noise
                cfg = _cfg(level, claim, "rq1", seed)
                cells.append(cfg)
                _log(client, exp, cfg, _history(before, after), {0: before, 20: after})
    out = tmp_path_factory.mktemp("reports")
    rep = analysis.write_report("curve", cells, uri=uri, out_dir=out, thresholds={"axes": {"dial": list(LEVELS)}},
                                n_boot=300)
    return rep, uri


def test_the_report_writes_the_curve_and_places_the_crossing(curve_report):
    rep, _ = curve_report
    names = {p.name for p in rep.files}
    assert {"thresholds.json", "thresholds.md", "alignment_curve.png"} <= names
    rows = json.loads((rep.out_dir / "thresholds.json").read_text())["rows"]
    holds = next(r for r in rows if r["claim"] == "random" and r["measure"] == "pass@1" and r["threshold"] == "holds")
    assert holds["axis"] == "dial" and holds["side"] == CROSSES
    assert LEVELS["lvl-2"] < holds["crossing"] < LEVELS["lvl-3"]
    assert LEVELS["lvl-1"] <= holds["lo"] <= holds["crossing"] <= holds["hi"] <= LEVELS["lvl-4"]
    np.testing.assert_allclose([lv["ratio"] for lv in holds["levels"]], [0.0, 0.25, 1.0, 1.0], atol=0.08)
    assert "lvl-3" in (rep.out_dir / "thresholds.md").read_text() or "0.35" in (rep.out_dir / "thresholds.md").read_text()


def test_four_levels_give_crossings_but_no_rank_agreement(curve_report):
    """A rank correlation's bootstrap over four levels is degenerate: the report gives none (five levels needed)."""
    rep, _ = curve_report
    assert json.loads((rep.out_dir / "thresholds.json").read_text())["agreement"] == []
    assert "Which alignment measure" not in (rep.out_dir / "thresholds.md").read_text()


def test_the_curve_is_logged_to_the_study_run(curve_report):
    from mlflow.tracking import MlflowClient

    rep, uri = curve_report
    listed = {f.path for f in MlflowClient(uri).list_artifacts(rep.run_id, "report")}
    assert {"report/thresholds.json", "report/alignment_curve.png"} <= listed


def test_two_models_make_no_curve(tmp_path):
    """The default study's fake store has alignment runs on two models only: no thresholds files."""
    from test_analysis import STUDY, _build
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    cells = _build(client, client.create_experiment(STUDY, artifact_location=(tmp_path / "a").as_uri()))
    rep = analysis.write_report(STUDY, cells, uri=uri, out_dir=tmp_path / "r", figures=False, log_to_mlflow=False,
                                n_boot=50)
    assert not (rep.out_dir / "thresholds.json").exists()
