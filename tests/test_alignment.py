"""Alignment measurement: pass@k for every k, bands, label by the written rule, one MLflow run."""

from __future__ import annotations

import mlflow

from studykit.probes.alignment import label_for, measure
from studykit.config.schema import validate


def test_measure_logs_the_whole_curve_and_labels_it(tmp_path, toy_learner):
    cfg = validate({"study": "a", "rq": "alignment", "claim": "alignment",
                    "model": {"name": "toy:custom", "toy": toy_learner}, "train": {"steps": 0, "max_new_tokens": 16},
                    "eval": {"n_samples": 8, "ks": [1, 8], "sets": [{"task": "toy", "limit": 32}], "alignment_k": 8,
                             "alignment_threshold": 0.99},
                    "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"}})
    res = measure(cfg, progress=False)
    curve = res.curves["toy"]
    assert sorted(curve) == list(range(1, 9))
    assert all(curve[k] <= curve[k + 1] + 1e-12 for k in range(1, 8))
    assert sum(res.counts["toy"]) / (32 * 8) == curve[1]
    lo, hi = res.bands["toy"][1][1], res.bands["toy"][1][2]
    assert lo <= curve[1] <= hi
    run = mlflow.MlflowClient(cfg.tracking.uri).get_run(res.run_id)
    assert run.data.tags["rq"] == "alignment" and run.data.tags["alignment"] == res.label
    assert res.label.startswith("weak") if curve[8] < 0.99 else res.label.startswith("strong")
    assert set(run.data.metrics) >= {f"eval/toy/pass_at_{k}" for k in range(1, 9)}
    probe = {f"contamination/toy/{s}" for s in ("em_0.4", "em_0.6", "em_0.8", "rougeL_0.6", "answer_recall",
                                                     "answer_acc_prefix60", "answer_acc_prefix80")}
    assert set(run.data.metrics) >= probe  # the contamination probe, on by default in alignment runs
    assert res.colour in ("clean", "contaminated") and f", {res.colour} (" in res.label
    assert run.data.tags["contamination"].startswith(res.colour)


def test_label_rule_uses_the_largest_k_within_alignment_k():
    cfg = validate({"eval": {"n_samples": 16, "ks": [1, 4, 16], "alignment_k": 8, "alignment_threshold": 0.5}})
    assert label_for(cfg, {1: 0.1, 4: 0.6, 16: 0.9}) == "strong (pass@4=0.60)"
    assert label_for(cfg, {1: 0.1, 4: 0.4, 16: 0.9}) == "weak (pass@4=0.40)"
