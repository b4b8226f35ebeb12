"""The evaluation-only power-sampling run end to end through the trainer (tiny sizes), and its config rules."""

from __future__ import annotations

import json

import mlflow
import pytest

from studykit.config import validate
from studykit.config.schema import ConfigError
from studykit.engine import trainer


def _raw(tmp_path, knobs, **eval_extra):
    return {
        "study": "t", "rq": "rq1", "claim": "power_sampling",
        "model": {"name": "toy:custom", "toy": knobs},
        "train": {"steps": 0, "max_new_tokens": 12},
        "eval": {"every": 0, "n_samples": 4, "ks": [1, 4], "sets": [{"task": "toy", "limit": 6}], **eval_extra},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt"),
                     "save_policy": "none"},
    }


def test_power_eval_run_logs_plain_then_power_with_its_token_cost(tmp_path, toy_learner, monkeypatch):
    from studykit.engine.evaluation import eval_seed, power_eval_seed

    cfg = validate(_raw(tmp_path, toy_learner, sampler="power", power={"alpha": 4, "blocks": 3, "mh_steps": 2}))
    seeds, real = [], trainer.evaluate_set
    monkeypatch.setattr(trainer, "evaluate_set", lambda *a, **kw: seeds.append(kw["seed"]) or real(*a, **kw))
    result = trainer.train(cfg, progress=False)
    assert result.status == "FINISHED"
    # step 0 shares every seed's plain evaluation; the power evaluation's seed carries train.seed, so a study's
    # seeds of a power cell are independent chains, not copies of one
    assert seeds == [eval_seed(0), power_eval_seed(cfg.train.seed)] and power_eval_seed(0) != power_eval_seed(1)
    client = mlflow.MlflowClient()
    files = [f.path for f in client.list_artifacts(result.run_id, "eval_counts/toy")]
    assert files == ["eval_counts/toy/step_00000.json", "eval_counts/toy/step_00001.json"]
    for step, path in enumerate(files):
        rec = json.loads(open(client.download_artifacts(result.run_id, path, str(tmp_path))).read())
        assert rec["step"] == step and rec["n"] == 4 and len(rec["correct_counts"]) == 6

    def history(key):
        return {m.step: m.value for m in client.get_metric_history(result.run_id, key)}

    assert set(history("eval/toy/pass_at_1")) == {0, 1}
    tokens = history("eval/toy/tokens_per_answer")
    multiple = history("eval/toy/token_cost_multiple")
    assert set(multiple) == {1} and multiple[1] == pytest.approx(tokens[1] / tokens[0])
    # 3 blocks (one extension each) plus 2 proposals per block: more than one sample's tokens, at most 9 x 12 each
    assert 1.0 < multiple[1] and tokens[1] <= 9 * 12
    assert 0.0 <= history("eval/toy/power_accept_rate")[1] <= 1.0
    run = client.get_run(result.run_id)
    assert run.data.tags["alignment"].startswith(("strong", "weak"))  # step 0: plain sampling labels the model


def test_power_config_rules(tmp_path):
    from conftest import LEARNER_KNOBS as knobs  # validation only: nothing is built
    plain = validate(_raw(tmp_path, knobs))
    power = validate(_raw(tmp_path, knobs, sampler="power"))
    other = validate(_raw(tmp_path, knobs, sampler="power", power={"mh_steps": 3}))
    assert len({plain.config_hash(), power.config_hash(), other.config_hash()}) == 3
    assert power.eval.power.alpha == 4 and power.eval.power.blocks == 16 and power.eval.power.mh_steps == 10
    over_vllm = _raw(tmp_path, knobs, sampler="power")
    over_vllm["train"] = {**over_vllm["train"], "sampler": "vllm"}
    over_vllm["model"] = {**over_vllm["model"], "finetune": "lora"}
    assert validate(over_vllm).train.sampler == "vllm"  # power sampling over the vllm backend
    bad = [
        ({"train": {"steps": 3}}, {"sampler": "power"}, "eval.sampler: got 'power' with train.steps 3"),
        ({"train": {"steps": 0, "sampler": "power"}}, {}, "train.sampler: got 'power'"),
        ({}, {"power": {"alpha": 2}}, "eval.power: got ['alpha'] with eval.sampler 'plain'"),
        ({}, {"sampler": "power", "power": {"blocks": 0}}, "eval.power.blocks"),
        ({"rq": "alignment"}, {"sampler": "power"}, "in an alignment run"),
    ]
    for top, eval_extra, message in bad:
        raw = _raw(tmp_path, knobs, **eval_extra)
        raw.update({k: ({**raw[k], **v} if isinstance(v, dict) else v) for k, v in top.items()})
        with pytest.raises(ConfigError) as err:
            validate(raw)
        assert message in str(err.value), str(err.value)


def test_verdict_row_of_a_power_cell_compares_its_gain_and_shows_its_token_cost():
    """Pure: a power cell (step 0 plain, step 1 power) against ground truth (step 0, step 20) on two seeds."""
    import numpy as np
    import pandas as pd

    from studykit.analysis.runs import Counts
    from studykit.analysis.verdict_text import markdown, records
    from studykit.analysis.verdicts import verdict_table

    ids = [f"p{i}" for i in range(40)]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3, 40)
    rows, counts = [], {}
    for claim, post_step, gain, cost in (("ground_truth", 20, 4, None), ("power_sampling", 1, 3, 9.0)):
        for seed in (0, 1):
            rid = f"{claim}-{seed}"
            after = np.clip(base + gain + rng.integers(-1, 2, 40), 0, 8)
            counts[rid] = {0: Counts(0, 8, ids, base), post_step: Counts(post_step, 8, ids, after)}
            row = {"run_id": rid, "start_time": 0, "study": "t", "rq": "rq1", "claim": claim, "condition": claim,
                   "model": "toy:strong", "task": "toy", "seed": str(seed), "alignment": "weak (pass@8=0.40)",
                   "config_hash": rid, "code_version": "c", "base_weights": "w",
                   "metrics.eval/toy/pass_at_1": float(after.mean() / 8),
                   "params.eval.sets": json.dumps([{"task": "toy"}])}
            if cost:
                row["metrics.eval/toy/token_cost_multiple"] = cost + seed
            rows.append(row)
    hist = pd.DataFrame(columns=["run_id", "key", "step", "value"])
    table = verdict_table(pd.DataFrame(rows), hist, counts, n_boot=200)
    power = table[table["claim"] == "power_sampling"].iloc[0]
    gt = table[table["claim"] == "ground_truth"].iloc[0]
    assert power["delta_pass1"] == pytest.approx(np.mean([(counts[f"power_sampling-{s}"][1].correct.mean()
                                                           - base.mean()) / 8 for s in (0, 1)]))
    assert power["ratio"] == pytest.approx(power["delta_pass1"] / gt["delta_pass1"], rel=1e-6)
    assert power["token_cost_multiple"] == pytest.approx(9.5) and np.isnan(gt["token_cost_multiple"])
    assert "9.5x the tokens per answer" in power["note"] and "9.5x" in markdown(table)
    assert [r["token_cost_multiple"] for r in records(table)] == [None, 9.5]
    assert "IDENTICAL SEEDS" not in power["note"]
    # seeds that are copies of one run (a power evaluation seeded by the step alone, as before the fix) are named
    copy = [dict(r) for r in rows]
    for r in copy:
        if r["claim"] == "power_sampling" and r["seed"] == "1":
            counts[r["run_id"]] = counts["power_sampling-0"]
    again = verdict_table(pd.DataFrame(copy), hist, counts, n_boot=200)
    assert "IDENTICAL SEEDS: seeds [0, 1] gave the same" in again[again["claim"] == "power_sampling"].iloc[0]["note"]
    # seeds that agree because every problem ends at 0 (or n) of n correct are not flagged: any seeds would agree
    for r in copy:
        if r["claim"] == "power_sampling":
            counts[r["run_id"]] = {0: counts[r["run_id"]][0], 1: Counts(1, 8, ids, np.zeros(40, dtype=int))}
    floor = verdict_table(pd.DataFrame(copy), hist, counts, n_boot=200)
    assert "IDENTICAL SEEDS" not in floor[floor["claim"] == "power_sampling"].iloc[0]["note"]


def test_a_dumped_config_validates_again(tmp_path):
    from conftest import LEARNER_KNOBS

    for extra in ({}, {"sampler": "power", "power": {"mh_steps": 3}}):
        cfg = validate(_raw(tmp_path, LEARNER_KNOBS, **extra))
        again = validate(cfg.model_dump(mode="json"))
        assert again.config_hash() == cfg.config_hash()


def test_report_of_a_study_with_a_power_cell(tmp_path):
    """The whole report (verdicts.json, verdicts.md, figures) over a real MLflow store holding ground truth (steps 0
    and 20) and a power cell (steps 0 and 1) on two seeds, logged as the trainer logs them."""
    import numpy as np
    from mlflow.entities import Metric

    from studykit.analysis import report
    from studykit.engine.evaluation import EvalResult, counts_artifact
    from studykit.tracking.experiment import run_tags

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("fake", artifact_location=str(tmp_path / "art"))
    ids = [f"toy-{i}" for i in range(30)]
    cells = []
    for claim, last, gain, extra in (("ground_truth", 20, 3, {}),
                                     ("power_sampling", 1, 2, {"sampler": "power", "power": {"blocks": 4}})):
        for seed in (0, 1):
            cfg = validate({"study": "fake", "rq": "rq1", "claim": claim, "condition": claim,
                            "model": {"name": "toy:strong"}, "train": {"seed": seed, "steps": 20 if last == 20 else 0},
                            "eval": {"n_samples": 8, "ks": [1, 8], "sets": [{"task": "toy", "limit": 30}], **extra},
                            "tracking": {"uri": uri}})
            cells.append(cfg)
            rid = client.create_run(exp, tags=run_tags(cfg, "strong (pass@8=0.90)")).info.run_id
            before = np.full(30, 2)
            after = np.clip(before + gain + (np.arange(30) + seed) % 3 - 1, 0, 8)
            metrics = [Metric("eval/toy/pass_at_1", float(c.mean() / 8), 0, s) for s, c in ((0, before), (last, after))]
            if extra:
                metrics += [Metric("eval/toy/token_cost_multiple", 6.0 + seed, 0, 1)]
            client.log_batch(rid, metrics=metrics)
            for step, c in ((0, before), (last, after)):
                client.log_dict(rid, EvalResult("toy", 8, c, {}, ids).counts_record(step), counts_artifact("toy", step))
            client.set_terminated(rid, "FINISHED")
    out = report.write_report("fake", cells, uri=uri, out_dir=tmp_path / "reports", log_to_mlflow=False, n_boot=200)
    data = json.loads((tmp_path / "reports" / "fake" / "verdicts.json").read_text())
    power = next(r for r in data["records"] if r["claim"] == "power_sampling")
    assert power["token_cost_multiple"] == 6.5 and power["n_seeds"] == 2 and power["ratio"] is not None
    assert power["delta_pass1"] == pytest.approx(2 / 8, abs=0.02)
    assert "6.5x the tokens per answer" in (tmp_path / "reports" / "fake" / "verdicts.md").read_text()
    assert any(c["claim"] == "power_sampling" and c["predicts"] == "holds-when-strong" for c in data["claims"])
    assert any(p.suffix == ".png" for p in out.files)
