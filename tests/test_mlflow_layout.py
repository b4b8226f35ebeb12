"""What the MLflow UI shows of a study: the experiment's landing view tag, readable unique run names, the study's
parent run (found again, never duplicated, never counted by the analysis), children that keep their parent across a
resume, the notebook as source, and the problem sets as dataset inputs (identical sets are one dataset)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from studykit.tracking import provenance, experiment as tracking
from studykit.analysis import runs
from studykit.engine import trainer
from studykit.toy import ensure_built
from studykit.config.schema import validate
from studykit.study.spec import expand

ROOT = Path(__file__).resolve().parent.parent
KIND = "mlflow.experimentKind"


def test_experiments_open_on_their_training_runs(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlc = tracking.client(uri)
    fresh = tracking.experiment_id("fresh", uri)
    assert mlc.get_experiment(fresh).tags[KIND] == "custom_model_development"
    old = mlc.create_experiment("old")  # made by older code: gets the tag on next use
    tracking.experiment_id("old", uri)
    assert mlc.get_experiment(old).tags[KIND] == "custom_model_development"
    mine = mlc.create_experiment("mine", tags={KIND: "genai_development"})  # a user's own choice stays
    tracking.experiment_id("mine", uri)
    assert mlc.get_experiment(mine).tags[KIND] == "genai_development"


def test_run_names_read_well_and_are_unique_in_the_default_study():
    cells = expand(ROOT / "params/studies/toy.yaml")
    names = [tracking.display_name(c.config) for c in cells]
    assert len(set(names)) == len(cells)
    by_cell = {c.name: tracking.display_name(c.config) for c in cells}
    assert by_cell["random-strong-toy-s0"] == "rq1 random | toy:strong | toy | s0"
    assert by_cell["noclip-random-weak-method-toy-s1"] == "ablation random@noclip | toy:weak-method | toy | s1"
    assert by_cell["alignment-strong-toy"] == "alignment | toy:strong | toy"
    seeds = [c.config for c in cells if c.name in ("nsr-weak-skill-toy-s0", "nsr-weak-skill-toy-s1")]
    assert len({tracking.group_name(c) for c in seeds}) == 1  # the UI's group-by on tag `group` joins the seeds
    tags = tracking.run_tags(cells[5].config)
    assert tags["mlflow.runName"] == by_cell[cells[5].name] and tags["group"] == tracking.group_name(cells[5].config)
    assert "mlflow.parentRunId" not in tags and "mlflow.source.name" not in tags  # a single run has neither


def test_parent_run_is_made_once_and_the_analysis_ignores_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = tracking.study_run("s", uri=uri)
    assert tracking.study_run("s", uri=uri) == first  # reruns, compare and report find the same run
    assert tracking.study_run("other", "s", uri=uri) != first  # another study in the same experiment has its own
    mlc = tracking.client(uri)
    mlc.log_metric(first, "eval/toy/pass_at_1", 0.5)
    mlc.set_terminated(first, "FINISHED")
    cfg = validate({"study": "s", "rq": "rq1", "claim": "random", "tracking": {"uri": uri}})
    frame = runs.finished_runs(["s"], uri)
    assert first in set(frame["run_id"])
    assert runs.select_cells(frame, [cfg]).runs.empty  # no config_hash: never a cell's run
    assert tracking.find_runs(cfg, None, uri) == []


def test_problem_sets_are_dataset_inputs_with_a_shared_digest(tmp_path):
    from studykit.tasks import get

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    task = get("toy")
    train, test = task.load("train")[:20], task.load("test")[:8]
    ids = []
    for _ in range(2):
        with mlflow.start_run() as run:
            tracking.log_problem_sets(("train (toy/train[:20])", train), [(tracking.set_name("toy", "toy", "test", 8),
                                                                            test)])
            ids.append(run.info.run_id)
    inputs = [MlflowClient().get_run(i).inputs.dataset_inputs for i in ids]
    contexts = [{t.value for d in ins for t in d.tags if t.key == "mlflow.data.context"} for ins in inputs]
    assert contexts == [{"training", "eval/toy"}] * 2
    digests = [{d.dataset.name: d.dataset.digest for d in ins} for ins in inputs]
    assert digests[0] == digests[1] and set(digests[0]) == {"train (toy/train[:20])", "toy (toy/test[:8])"}
    assert digests[0]["train (toy/train[:20])"] != digests[0]["toy (toy/test[:8])"]


def _cfg(tmp_path, knobs, parent):
    return validate({
        "study": "t", "rq": "rq1", "claim": "random", "reward": {"name": "random"},
        "model": {"name": "toy:custom", "toy": knobs},
        "train": {"steps": 2, "prompts_per_step": 4, "group_size": 4, "mini_batches": 1, "max_new_tokens": 16,
                  "warmup_steps": 0, "weight_decay": 0.0, "checkpoint_every": 1},
        "eval": {"every": 0, "n_samples": 2, "ks": [1, 2], "sets": [{"task": "toy", "limit": 8}]},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt"),
                     "parent_run": parent, "source_name": "notebooks/01_reward_signal.ipynb"}})


def test_a_resumed_cell_keeps_its_parent_source_and_datasets(tmp_path, toy_learner, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = tracking.study_run("t", uri=uri)
    cfg = _cfg(tmp_path, toy_learner, parent)
    real_step = trainer._train_step

    def interrupted(run, at):
        if at == 2:
            raise KeyboardInterrupt
        return real_step(run, at)

    monkeypatch.setattr(trainer, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, progress=False)
    monkeypatch.setattr(trainer, "_train_step", real_step)
    started = tracking.client(uri).search_runs([tracking.experiment_id("t", uri)], "tags.rq = 'rq1'")[0].data.tags
    built = ensure_built("custom", progress=False, **toy_learner)
    assert started["code_version"] == provenance.code_version()
    assert started["base_weights"] == provenance.base_weights(str(built))
    assert started["base_weights"].startswith(f"toy:{built.name}@")
    monkeypatch.setattr(provenance, "code_version", lambda: "newer")  # resumed by other code: recorded as such
    result = trainer.train(cfg, progress=False)
    run = tracking.client(uri).get_run(result.run_id)
    assert run.data.tags["code_version"] == f"{started['code_version']} then newer"
    assert run.data.tags["base_weights"] == started["base_weights"]
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_step"] == "1"
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent
    assert tags["mlflow.source.name"] == "notebooks/01_reward_signal.ipynb" and tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.runName"] == "rq1 random | toy:custom | toy | s0" and tags["group"]
    contexts = sorted(t.value for d in run.inputs.dataset_inputs for t in d.tags if t.key == "mlflow.data.context")
    assert contexts == ["eval/toy", "training"]  # logged once, at the first start
