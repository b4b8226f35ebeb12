"""Checkpoints load without running code (issue 21): pickle is never opened, and a save/load round trip resumes
training bit-identically."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from studykit.engine import checkpoint, trainer

from test_trainer import _cfg, _history, _interrupt_training_at


class _Canary:
    """Unpickling this creates the canary file: what a crafted state.pt on shared storage could do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _crafted(folder: Path, canary: Path) -> None:
    folder.mkdir(parents=True)
    torch.save({"step": 2, "run_id": "x", "payload": _Canary(canary)}, folder / "state.pt")


def test_a_crafted_pickle_checkpoint_is_refused_and_never_executed(tmp_path):
    canary, ckpt = tmp_path / "canary", tmp_path / "ckpt" / "abc"
    _crafted(ckpt, canary)
    for read in (lambda: checkpoint.peek(ckpt), lambda: checkpoint.load(ckpt, None, None, None)):
        with pytest.raises(checkpoint.CheckpointError, match=r"state\.pt is a pickle checkpoint.*Delete the folder"):
            read()
    assert not canary.exists()
    torch.load(ckpt / "state.pt", weights_only=False)  # what the old code did: the canary appears
    assert canary.exists()


def test_training_with_a_crafted_checkpoint_in_place_runs_no_code(tmp_path, toy_learner):
    cfg = _cfg(tmp_path, toy_learner, train={"steps": 2})
    canary = tmp_path / "canary"
    _crafted(checkpoint.folder(cfg.tracking.checkpoint_dir, cfg.config_hash()), canary)
    with pytest.raises(checkpoint.CheckpointError, match="state.pt"):
        trainer.train(cfg, progress=False)
    assert not canary.exists()
    mlflow.set_tracking_uri(cfg.tracking.uri)
    experiment = mlflow.get_experiment_by_name("t")  # the refusal comes before anything is written to MLflow
    assert experiment is None or mlflow.MlflowClient().search_runs([experiment.experiment_id]) == []


def test_state_values_round_trip_exactly():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "pcg": np.random.default_rng(3).bit_generator.state, "ints": {0: {"step": torch.tensor(3.0)}},
             "tagged": {"__tensor__": "t0"}, "scalar": np.float32(0.1), "nan": float("nan"), "pairs": [(1, "a")]}
    tensors: dict = {}
    back = checkpoint._decode(json.loads(json.dumps(checkpoint._encode(state, tensors, "state"))), tensors, True)
    assert back["python"] == state["python"] and back["pcg"] == state["pcg"]
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][1].dtype == state["numpy"][1].dtype and back["numpy"][2:] == state["numpy"][2:]
    assert torch.equal(back["torch"], state["torch"]) and torch.equal(back["ints"][0]["step"], torch.tensor(3.0))
    assert back["tagged"] == {"__tensor__": "t0"}  # a plain dict that looks like a tag stays a dict
    assert type(back["scalar"]) is np.float32 and back["scalar"] == state["scalar"]
    assert np.isnan(back["nan"]) and back["pairs"] == [(1, "a")]
    with pytest.raises(TypeError, match=r"state\.f of type function"):
        checkpoint._encode({"f": lambda: 0}, {}, "state")


def test_a_malformed_state_file_names_the_file(tmp_path):
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="state.json is not a readable"):
        checkpoint.peek(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps({"run_id": "r"}))
    with pytest.raises(checkpoint.CheckpointError, match="integer 'step'"):
        checkpoint.peek(tmp_path)


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, toy_learner, monkeypatch):
    # Killed at step 4 after the checkpoint at 2: the resumed steps 3-4 must match a run never interrupted, so the
    # optimiser, scheduler, data position and every RNG came back exactly.
    sections = {"train": {"steps": 4, "checkpoint_every": 2, "prompts_per_step": 4, "lr": 5e-3}}
    straight = trainer.train(_cfg(tmp_path / "a", toy_learner, **sections), progress=False)
    cfg = _cfg(tmp_path / "b", toy_learner, **sections)
    real_step = _interrupt_training_at(monkeypatch, cfg, 4)
    monkeypatch.setattr(trainer, "_train_step", real_step)
    resumed = trainer.train(cfg, progress=False)
    for key in ("train/reward_mean", "train/grad_norm", "train/lr", "eval/toy/pass_at_1"):
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'a'}/mlflow.db")
        want = _history(straight.run_id, key)
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'b'}/mlflow.db")
        assert _history(resumed.run_id, key) == want, key
