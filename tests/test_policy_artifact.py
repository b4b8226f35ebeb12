"""Every finished run keeps what it trained: the `policy/` artifact, its `policy_saved` tag, and `load_policy` of
`runs:/<id>/policy` (or a downloaded folder) giving back the trained policy, on a real sqlite MLflow store."""

from __future__ import annotations

import mlflow
import pytest
import torch

from studykit.policy import models, store as policy_store
from studykit.tracking import experiment as tracking
from studykit.engine import trainer
from studykit.config.schema import ConfigError, validate
from studykit.policy.sampling.hf import HFSampler
from studykit.tasks import get as get_task
from studykit.tasks.templates import render


def _cfg(tmp_path, knobs, finetune="full", save="auto", lr=None, steps=2):
    lr = lr or {"full": 2e-3, "lora": 2e-2, "qlora": 2e-2}[finetune]
    return validate({
        "study": "p", "rq": "rq1",
        "model": {"name": "toy:custom", "toy": knobs, "finetune": finetune, "lora_rank": 4, "lora_alpha": 8},
        "train": {"steps": steps, "prompts_per_step": 4, "group_size": 8, "lr": lr, "max_new_tokens": 16,
                  "mini_batches": 1, "warmup_steps": 0},
        "eval": {"every": 0, "n_samples": 2, "ks": [1, 2], "sets": [{"task": "toy", "limit": 4}]},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt"),
                     "save_policy": save},
    })


def _train(cfg, monkeypatch):
    """Train `cfg`; returns (run id, the live trained policy)."""
    real_build, built = trainer._build, []
    monkeypatch.setattr(trainer, "_build", lambda c, saved=None: built.append(real_build(c, saved)) or built[-1])
    result = trainer.train(cfg, progress=False)
    assert result.status == "FINISHED"
    return result.run_id, built[0].policy


def _prompts(policy, n=8):
    task = get_task("toy")
    return [render(p, task.template, policy.tokenizer) for p in task.load("test")[:n]]


def _completions(policy, temperature=0.0):
    """Greedy completions, or (temperature > 0) seeded samples: equal weights give equal lists."""
    groups = HFSampler(policy).generate(_prompts(policy), n=1 if temperature == 0 else 4, temperature=temperature,
                                        max_new_tokens=16, seed=7)
    return [t for g in groups for t in g.texts]


def _same_outputs(a, b):
    return _completions(a) == _completions(b) and _completions(a, 1.0) == _completions(b, 1.0)


def _logits(policy):
    ids = policy.tokenizer(_prompts(policy, 1)[0], return_tensors="pt").input_ids
    policy.model.eval()
    with torch.no_grad():
        return policy.model(input_ids=ids).logits


def _tag(run_id):
    return mlflow.MlflowClient().get_run(run_id).data.tags[policy_store.TAG]


@pytest.mark.parametrize("finetune,save,kind", [("full", "auto", "full"), ("lora", "auto", "adapter"),
                                                ("lora", "full", "full")])
def test_runs_uri_gives_back_the_trained_policy(tmp_path, toy_learner, monkeypatch, finetune, save, kind):
    run_id, trained = _train(_cfg(tmp_path, toy_learner, finetune, save), monkeypatch)
    assert _tag(run_id) == kind
    names = {a.path.split("/")[-1] for a in mlflow.MlflowClient().list_artifacts(run_id, "policy")}
    assert "studykit_policy.json" in names
    assert ("adapter_model.safetensors" in names) == (kind == "adapter")
    assert ("model.safetensors" in names and "tokenizer.json" in names) == (kind == "full")

    loaded = models.load_policy(f"runs:/{run_id}/policy", device="cpu")
    base = models.load_policy("toy:custom", toy_knobs=toy_learner, device="cpu")
    assert loaded.finetune == (finetune if kind == "adapter" else "full") and loaded.trainable_parameters()
    assert not torch.allclose(_logits(base), _logits(trained), atol=1e-3)  # training moved the policy
    assert torch.allclose(_logits(loaded), _logits(trained), atol=1e-4)
    assert _same_outputs(loaded, trained) and _completions(trained, 1.0) != _completions(base, 1.0)


def test_local_folder_and_recorded_settings(tmp_path, toy_learner, monkeypatch):
    cfg = _cfg(tmp_path, toy_learner, "lora")
    run_id, trained = _train(cfg, monkeypatch)
    folder = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/policy", dst_path=str(tmp_path / "dl"))
    meta = policy_store.read_metadata(tmp_path / "dl" / "policy")
    assert meta["base"] == "toy:custom" and meta["toy"] == toy_learner and meta["finetune"] == "lora"
    assert meta["lora"]["lora_rank"] == 4 and meta["config_hash"] == cfg.config_hash() and meta["run_id"] == run_id
    assert meta["step"] == 2
    loaded = models.load_policy(folder, device="cpu")
    assert loaded.model.peft_config["default"].r == 4 and loaded.base_path == trained.base_path
    assert _same_outputs(loaded, trained)
    with pytest.raises(ValueError, match="lora_rank"):
        models.load_policy(folder, lora_rank=8, device="cpu")
    with pytest.raises(ValueError, match="LoRA adapter"):
        models.load_policy(folder, finetune="full", device="cpu")


def test_qlora_adapter_round_trip(tmp_path, toy_learner, monkeypatch):
    run_id, trained = _train(_cfg(tmp_path, toy_learner, "qlora"), monkeypatch)
    assert _tag(run_id) == "adapter"
    loaded = models.load_policy(f"runs:/{run_id}/policy", device="cpu")
    assert any(type(m).__name__ == "Linear4bit" for m in loaded.model.modules())
    assert _same_outputs(loaded, trained)


def test_save_policy_none_keeps_nothing_and_says_so(tmp_path, toy_learner, monkeypatch):
    run_id, _ = _train(_cfg(tmp_path, toy_learner, save="none", steps=1), monkeypatch)
    assert _tag(run_id) == "none (tracking.save_policy=none)"
    assert not mlflow.MlflowClient().list_artifacts(run_id, "policy")
    with pytest.raises(policy_store.PolicyNotFound, match="save_policy=none"):
        models.load_policy(f"runs:/{run_id}/policy")


def test_clear_errors_for_unknown_runs_and_runs_without_a_policy(tmp_path):
    experiment = tracking.experiment_id("old", f"sqlite:///{tmp_path}/mlflow.db")  # and points mlflow at it
    with pytest.raises(policy_store.PolicyNotFound, match="no MLflow run 'nope'"):
        models.load_policy("runs:/nope/policy")
    with mlflow.start_run(experiment_id=experiment) as old:  # a run from before policies were kept
        pass
    with pytest.raises(policy_store.PolicyNotFound, match="before studykit logged policies"):
        models.load_policy(f"runs:/{old.info.run_id}/policy")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        models.load_policy(str(tmp_path / "missing"))


def test_auto_skips_large_full_fine_tunes_with_a_reason():
    assert policy_store.choose_kind("auto", "lora", 10**10) == ("adapter", "adapter")
    assert policy_store.choose_kind("auto", "full", 10**6) == ("full", "full")
    kind, tag = policy_store.choose_kind("auto", "full", 7 * 10**9)
    assert kind is None and tag.startswith("none (") and "7000M" in tag and "save_policy=full" in tag
    assert policy_store.choose_kind("full", "full", 7 * 10**9) == ("full", "full")


def test_save_policy_validation_names_the_field():
    with pytest.raises(ConfigError, match=r"tracking\.save_policy: got 'adapter'.*model\.finetune"):
        validate({"tracking": {"save_policy": "adapter"}})
    with pytest.raises(ConfigError, match=r"tracking\.save_policy: got 'full'.*qlora"):
        validate({"model": {"finetune": "qlora"}, "tracking": {"save_policy": "full"}})
    with pytest.raises(ConfigError, match="tracking.save_policy"):
        validate({"tracking": {"save_policy": "weights"}})
    assert validate({}).tracking.save_policy == "auto"
    lora = {"model": {"finetune": "lora"}}
    assert validate(lora | {"tracking": {"save_policy": "none"}}).config_hash() == validate(lora).config_hash()
