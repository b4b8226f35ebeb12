"""`studykit export verl` with plug-ins (issue 22): a per-completion reward plug-in goes through studykit's
compute_score (its import path, options and identity in the rows), an estimator plug-in through verl's registry (named
by the launch script's environment); a group-level reward and task plug-ins are refused by name. No verl import:
compute_score and the registered estimator function are called directly, with examples/my_claim on sys.path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from studykit.config.schema import validate
from studykit.infra.plugins import PluginError
from studykit.integrations import verl_estimators, verl_plugins
from studykit.integrations import verl_translate as tr
from studykit.integrations.verl import compute_score, decode_options, encode_options
from studykit.integrations.verl_export import export
from studykit.scoring import plugins, rewards
from studykit.tasks import get as get_task
from plugin_helpers import EXAMPLE, loose_module

REWARD = "my_claim.rewards:short_answer"
ESTIMATOR = "my_claim.estimators:centred_sign"
BASE = {
    "study": "verlp", "rq": "rq1", "claim": "short",
    "model": {"name": "Qwen/Qwen2.5-7B", "finetune": "lora", "dtype": "bfloat16", "lora_rank": 8, "lora_alpha": 16},
    "data": {"task": "math500", "train_split": "test", "train_size": 6},
    "train": {"steps": 2, "prompts_per_step": 4, "group_size": 4, "mini_batches": 1, "max_new_tokens": 256},
    "eval": {"sets": [{"task": "math500", "limit": 2}], "n_samples": 2, "ks": [1, 2], "every": 0},
}


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def cfg_of(tmp_path, **sections):
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        data[key] = data.get(key, {}) | value
    data["tracking"] = {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt")}
    return validate(data)



@pytest.fixture
def exported(tmp_path, example):
    cfg = cfg_of(tmp_path, reward={"name": REWARD, "options": {"max_chars": 300}},
                 algo={"estimator": ESTIMATOR, "estimator_options": {"scale": 2.0}})
    return cfg, export(cfg, tmp_path / "job", create_run=False)


def test_the_export_carries_both_plugins(exported):
    cfg, result = exported
    ids = cfg.plugins()
    train = pq.read_table(result.out_dir / "train.parquet").to_pylist()
    reward = train[0]["extra_info"]["reward"]
    assert reward["plugin"] == REWARD and reward["identity"] == ids["reward"]
    assert json.loads(reward["options"]) == {"max_chars": 300} and reward["name"] == REWARD
    val = pq.read_table(result.out_dir / "val.parquet").to_pylist()
    assert val[0]["extra_info"]["reward"]["name"] == "ground_truth"  # evaluation: correctness, no plug-in
    assert "plugin" not in val[0]["extra_info"]["reward"]
    launch = (result.out_dir / "launch.sh").read_text()
    assert "algorithm.adv_estimator=studykit_plugin" in launch
    assert f"export STUDYKIT_ESTIMATOR_PLUGIN={ESTIMATOR}" in launch
    assert f"export STUDYKIT_ESTIMATOR_IDENTITY='{ids['estimator']}'" in launch
    assert "export VERL_USE_EXTERNAL_MODULES=studykit.integrations.verl_estimators" in launch
    assert f"+ray_kwargs.ray_init.runtime_env.env_vars.STUDYKIT_ESTIMATOR_PLUGIN='\"'\"'{ESTIMATOR}'\"'\"'" in launch
    assert f"export PYTHONPATH={EXAMPLE}\"${{PYTHONPATH:+:$PYTHONPATH}}\"" in launch  # a loose module's folder
    assert "module 'my_claim.rewards' must be importable in verl's environment" in launch
    assert "reward.custom_reward_function.path=pkg://studykit.integrations.verl" in launch
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["plugins"]["reward"] == {"name": REWARD, "target": REWARD, "identity": ids["reward"],
                                             "options": {"max_chars": 300}, "folder": str(EXAMPLE)}
    line = next(x for x in launch.splitlines() if x.startswith("export STUDYKIT_ESTIMATOR_OPTIONS="))
    assert decode_options(line.split("=", 1)[1]) == {"scale": 2.0}


def test_compute_score_pays_each_completion_as_the_plugin_does(exported):
    cfg, result = exported
    row = pq.read_table(result.out_dir / "train.parquet").to_pylist()[0]
    task = get_task("math500")
    problem = next(p for p in task.load("test") if p.id == row["extra_info"]["problem_id"])
    own = plugins.reward(REWARD, verify=task.verify, max_chars=300)
    truth = rewards.get("ground_truth", verify=task.verify)
    short, long = f"<think>ok</think> <answer>{problem.answer}</answer>", \
        f"<think>{'x' * 400}</think> <answer>{problem.answer}</answer>"
    hostile = ["<answer>" * 100_000, "\\boxed{" * 5_000, None, 12345, "<answer>nope</answer>"]
    for text in [short, long, *hostile]:
        got = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"])
        plain = text if isinstance(text, str) else ""
        mine, right = own([plain], problem, rng=np.random.default_rng(0)), truth([plain], problem)
        assert got["score"] == mine.rewards[0] and got["acc"] == float(right.correct[0]), repr(text)[:40]
        assert got["format"] == float(right.format_ok[0])
    paid = [compute_score(row["data_source"], t, row["reward_model"]["ground_truth"], row["extra_info"])["score"]
            for t in (short, long)]
    assert paid == [1.0, 0.0]  # right and short is paid; right and over max_chars is not


def test_compute_score_names_a_plugin_it_cannot_import_or_whose_code_changed(exported):
    cfg, result = exported
    row = pq.read_table(result.out_dir / "train.parquet").to_pylist()[0]
    info = json.loads(json.dumps(row["extra_info"]))
    info["reward"]["plugin"] = "not_installed_here.rewards:fn"
    with pytest.raises(PluginError, match="cannot import module 'not_installed_here.rewards'(.|\n)*must be importable "
                                          "in verl's environment"):
        compute_score(row["data_source"], "<answer>1</answer>", "1", info)
    info = json.loads(json.dumps(row["extra_info"]))
    info["reward"]["identity"] = REWARD + "#000000000000"
    with pytest.raises(PluginError, match="is not the exported code"):
        compute_score(row["data_source"], "<answer>1</answer>", "1", info)


def test_the_estimator_plugin_is_registered_from_the_environment(exported, monkeypatch):
    cfg, _ = exported
    for name, value in verl_plugins.env(cfg).items():
        monkeypatch.setenv(name, value)
    verl_estimators.plugin_from_env.cache_clear()
    scores = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    index = ["a", "a", "b", "b", "b", "c"]
    mask = torch.ones(6, 2)
    adv, returns = verl_estimators.plugin_estimate(scores, mask, index=index)
    # summed per row [1, 0, 0, 2, 0, 1]; per uid: a [1, 0] -> 2*sign(r - mean) = [2, -2]; b [0, 2, 0] -> [-2, 2, -2];
    # c [1] alone -> 0
    assert adv[:, 0].tolist() == [2.0, -2.0, -2.0, 2.0, -2.0, 0.0] and torch.equal(adv, returns)
    monkeypatch.setenv(verl_plugins.ENV["identity"], ESTIMATOR + "#000000000000")
    verl_estimators.plugin_from_env.cache_clear()
    with pytest.raises(PluginError, match="not the exported code"):
        verl_estimators.plugin_estimate(scores, mask, index=index)
    verl_estimators.plugin_from_env.cache_clear()


def test_a_group_level_reward_and_task_plugins_are_refused_by_name(tmp_path, monkeypatch):
    mod = loose_module(tmp_path, monkeypatch, "groupwise", """
        def reward(completions, problem, verify, rng):
            return [float(len(c) == min(map(len, completions))) for c in completions]
    """)
    cfg = cfg_of(tmp_path, reward={"name": f"{mod}:reward"})
    said = "\n".join(tr.refusals(cfg))
    assert f"reward.name '{mod}:reward': the reward plug-in ({cfg.plugins()['reward']}) is called with the whole " \
           "group" in said and "per_completion = True" in said
    with pytest.raises(ValueError, match="per_completion"):
        export(cfg, tmp_path / "nothing", create_run=False)
    assert not (tmp_path / "nothing").exists()  # refused before anything is written
    loose_module(tmp_path, monkeypatch, "my_tasks", """
        from studykit.tasks import Problem

        class Parity:
            name, template, splits = "parity", "think", ("train", "test")

            def load(self, split):
                return [Problem(f"{split}{i}", f"{i}?", str(i % 2), {"task": "parity"}) for i in range(4)]

            def generate(self, n, seed=0, difficulty=1):
                return self.load("train")[:n]

            def verify(self, problem, answer_text):
                return answer_text == problem.answer
    """)
    cfg = cfg_of(tmp_path, data={"task": "my_tasks:Parity", "train_split": "train"},
                 eval={"sets": [{"task": "my_tasks:Parity", "split": "test"}]})
    assert any(r.startswith("data.task: the task plug-in (my_tasks:Parity#") for r in tr.refusals(cfg))


def test_options_travel_as_base64_json_and_hydra_values_are_quoted():
    options = {"scale": 2.0, "note": "a'b ${x} \\ ünï"}
    assert decode_options(encode_options(options)) == options
    assert set(encode_options(options)) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    with pytest.raises(ValueError, match="expected a mapping"):
        decode_options(encode_options([1]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no quote, backslash"):
        verl_plugins._hydra_quoted("a'b")
