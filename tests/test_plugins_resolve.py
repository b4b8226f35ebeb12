"""Plug-ins are resolved once (issue 22): a training run of N steps resolves its estimator plug-in once, not per step;
the config hash reads cached identities; an edited plug-in file (mtime/size) is resolved again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studykit.config.schema import validate
from studykit.engine import grpo, trainer
from studykit.infra import plugins as infra
from studykit.scoring.plugins import PluginEstimator
from plugin_helpers import EXAMPLE, loose_module

ESTIMATOR = "my_claim.estimators:centred_sign"


@pytest.fixture
def counted(monkeypatch):
    """Every call of infra.plugins.resolve, as (kind, name), with the process's cache emptied first."""
    calls: list[tuple[str, str]] = []
    real = infra.resolve

    def counting(kind, name, shipped=()):
        calls.append((kind, name))
        return real(kind, name, shipped)

    infra.clear_cache()
    monkeypatch.setattr(infra, "resolve", counting)
    yield calls
    infra.clear_cache()



def test_a_run_of_n_steps_resolves_its_estimator_once(tmp_path, toy_learner, monkeypatch, counted):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    steps = 3
    cfg = validate({
        "study": "plug", "rq": "rq1", "claim": "once",
        "model": {"name": "toy:custom", "toy": toy_learner},
        "algo": {"estimator": ESTIMATOR, "estimator_options": {"scale": 1.0}, "dynamic_sampling": False},
        "train": {"steps": steps, "prompts_per_step": 4, "group_size": 4, "lr": 3e-4, "max_new_tokens": 16,
                  "mini_batches": 1, "warmup_steps": 0, "weight_decay": 0.0},
        "eval": {"every": 0, "n_samples": 2, "ks": [1], "sets": [{"task": "toy", "limit": 4}]},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt")},
    })
    calls_of_estimator = []
    real = grpo.compute_advantages

    def spy(rewards, estimator, *args, **kwargs):
        calls_of_estimator.append(estimator)
        return real(rewards, estimator, *args, **kwargs)

    monkeypatch.setattr(grpo, "compute_advantages", spy)
    infra.clear_cache()  # validate() resolved it: the run starts from an empty cache
    counted.clear()
    result = trainer.train(cfg, progress=False)
    assert result.status == "FINISHED", result.reason
    assert len(calls_of_estimator) == steps  # one advantage computation per step (no dynamic-sampling refills) ...
    assert counted.count(("estimator", ESTIMATOR)) == 1, counted  # ... and one resolution in the whole run
    built = calls_of_estimator[0]  # the trainer built the estimator once and passes that object every step
    assert isinstance(built, PluginEstimator) and all(e is built for e in calls_of_estimator)


def test_the_config_hash_reads_cached_identities_until_the_file_changes(tmp_path, monkeypatch, counted):
    path = tmp_path / "cached_est.py"
    loose_module(tmp_path, monkeypatch, "cached_est", """
        def est(rewards):
            return rewards - rewards.mean()
    """)
    cfg = validate({"algo": {"estimator": "cached_est:est"}})
    counted.clear()
    first = cfg.config_hash()
    for _ in range(5):
        assert cfg.config_hash() == first
    assert counted.count(("estimator", "cached_est:est")) <= 1
    resolved = len(counted)
    path.write_text("def est(rewards):\n    return 2 * (rewards - rewards.mean())  # edited\n")
    edited = cfg.config_hash()
    assert edited != first and len(counted) == resolved + 1  # the size changed: resolved again, a new hash
    adv = grpo.compute_advantages(np.array([[1.0, 0.0]]), "cached_est:est")
    assert adv.tolist() == [[1.0, -1.0]]  # the edited code runs


def test_a_built_estimator_takes_no_second_set_of_options(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    built = grpo.make_estimator(ESTIMATOR, {"scale": 2.0})
    assert grpo.compute_advantages([[1.0, 0.0]], built).tolist() == [[2.0, -2.0]]
    with pytest.raises(ValueError, match="built with its options"):
        grpo.compute_advantages([[1.0, 0.0]], built, options={"scale": 3.0})
    with pytest.raises(ValueError, match="takes no options"):
        grpo.make_estimator("grpo", {"scale": 1.0})
