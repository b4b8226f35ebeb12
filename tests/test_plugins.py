"""Plug-ins (issue 22): a user's reward, estimator and task by import path or entry point, checked by `params check`,
identified in the config hash and tags, run in a real training run, bounded, and named when they fail."""

from __future__ import annotations

import re
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from studykit import tasks
from studykit.cli import commands as cli
from studykit.config.schema import ConfigError, validate
from studykit.engine import grpo, trainer
from studykit.infra.plugins import PluginError
from studykit.scoring import plugins
from studykit.tasks import Problem
from plugin_helpers import EXAMPLE, loose_module

REWARD = "my_claim.rewards:short_answer"
ESTIMATOR = "my_claim.estimators:centred_sign"
PROBLEM = Problem("p0", "1+1", "2", {"task": "toy"})


def _exact(problem, answer):
    return answer == problem.answer


@pytest.fixture
def example(monkeypatch):
    """examples/my_claim importable as a loose package (on sys.path, not installed)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))



def _dist(root: Path, monkeypatch, entry_points: str, name: str = "my-claim-fake", version: str = "0.3.0") -> None:
    """A fake installed distribution: importlib.metadata finds `*.dist-info` folders on sys.path."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(root))


def _tiny(tmp_path, knobs, **sections):
    base = {
        "study": "plug", "rq": "rq1", "claim": "short",
        "model": {"name": "toy:custom", "toy": knobs},
        "train": {"steps": 2, "prompts_per_step": 8, "group_size": 8, "lr": 3e-4, "max_new_tokens": 16,
                  "mini_batches": 1, "warmup_steps": 0, "weight_decay": 0.0},
        "eval": {"every": 0, "n_samples": 4, "ks": [1, 4], "sets": [{"task": "toy", "limit": 16}]},
        "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db", "checkpoint_dir": str(tmp_path / "ckpt")},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


# ---- the interfaces


def test_example_reward_pays_only_short_correct_answers(example):
    fn = plugins.reward(REWARD, verify=_exact, max_chars=40)
    texts = ["<think>x</think><answer>2</answer>", "<think>x</think><answer>3</answer>",
             "<think>" + "y" * 40 + "</think><answer>2</answer>", None]
    res = fn(texts, PROBLEM, rng=np.random.default_rng(0))
    assert res.rewards.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert res.correct.tolist() == [True, False, True, False]  # true correctness is studykit's, not the plug-in's


def test_plugin_estimator_runs_per_group(example):
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    adv = grpo.compute_advantages(r, ESTIMATOR, options={"scale": 2.0})
    assert adv.tolist() == [[2.0, -2.0, -2.0, 2.0], [2.0, 2.0, 2.0, -2.0]]
    with pytest.raises(ValueError, match="takes no options"):
        grpo.compute_advantages(r, "grpo", options={"scale": 2.0})


def test_hanging_reward_is_cut_at_its_deadline(tmp_path, monkeypatch):
    mod = loose_module(tmp_path, monkeypatch, "hangs", """
        def reward(completions, problem, verify, rng):
            while True:
                pass
    """)
    monkeypatch.setattr(plugins, "TIME_LIMIT_S", 0.3)
    started = time.monotonic()
    res = plugins.reward(f"{mod}:reward", verify=_exact)(["<answer>2</answer>"] * 4, PROBLEM,
                                                            rng=np.random.default_rng(0))
    assert time.monotonic() - started < 5
    assert res.rewards.tolist() == [0.0] * 4 and res.extra["plugin_timeout"] is True


def test_hostile_completions_reach_the_plugin_bounded(example):
    hostile = "<answer>" * 200_000 + "\\boxed{" * 100_000
    started = time.monotonic()
    res = plugins.reward(REWARD, verify=_exact)([hostile, 12345], PROBLEM, rng=np.random.default_rng(0))
    assert time.monotonic() - started < 5 and res.rewards.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("body,match", [
    ("return [1.0]", "returned shape"),
    ("return [float('nan')] * len(completions)", "non-finite"),
    ("raise RuntimeError('boom')", r"reward plug-in 'badret:reward' \[badret:reward#\w+\] raised RuntimeError: boom"),
])
def test_bad_reward_results_name_the_plugin(tmp_path, monkeypatch, body, match):
    mod = loose_module(tmp_path, monkeypatch, "badret", f"def reward(completions, problem, verify, rng):\n    {body}\n")
    with pytest.raises(PluginError, match=match):
        plugins.reward(f"{mod}:reward", verify=_exact)(["a", "b"], PROBLEM, rng=np.random.default_rng(0))


# ---- entry points


def test_entry_points_make_bare_names_available(tmp_path, monkeypatch, example):
    _dist(tmp_path / "site", monkeypatch, """
        [studykit.rewards]
        short_answer = my_claim.rewards:short_answer
        [studykit.estimators]
        centred_sign = my_claim.estimators:centred_sign
    """)
    cfg = validate({"reward": {"name": "short_answer", "options": {"max_chars": 50}},
                    "algo": {"estimator": "centred_sign"}})
    ids = cfg.plugins()
    assert ids["reward"].startswith("my_claim.rewards:short_answer==0.3.0#")
    assert ids["estimator"].startswith("my_claim.estimators:centred_sign==0.3.0#")
    assert grpo.compute_advantages([[1.0, 0.0]], "centred_sign").tolist() == [[1.0, -1.0]]


@pytest.mark.parametrize("group,name,config,field", [
    ("studykit.rewards", "ground_truth", {}, "reward.name"),
    ("studykit.estimators", "nsr", {}, "algo.estimator"),
    ("studykit.tasks", "toy", {}, "data.task"),
])
def test_an_entry_point_with_a_shipped_name_is_an_error(tmp_path, monkeypatch, example, group, name, config, field):
    _dist(tmp_path / "site", monkeypatch, f"[{group}]\n{name} = my_claim.rewards:short_answer\n")
    with pytest.raises(ConfigError, match=rf"{field}: entry point '{name}' of group '{group}'(.|\n)*clashes"):
        validate(config)


# ---- params check: each kind of bad plug-in, before anything runs


GOOD_TASK = """
    from studykit.tasks import Problem

    class Parity:
        name = "parity"
        template = "think"
        splits = ("train", "test")
        sizes = {"train": 6, "test": 4}

        def __init__(self, width: int = 3):
            self.width = width

        def load(self, split):
            n = self.sizes[split]
            return [Problem(f"{split}{i}", f"parity of {i:0{self.width}b}?", str(bin(i).count("1") % 2),
                            {"task": "parity"}) for i in range(n)]

        def generate(self, n, seed=0, difficulty=1):
            return self.load("train")[:n]

        def verify(self, problem, answer_text):
            return answer_text == problem.answer
"""


def test_a_task_plugin_is_a_task(tmp_path, monkeypatch):
    mod = loose_module(tmp_path, monkeypatch, "my_tasks", GOOD_TASK)
    name = f"{mod}:Parity"
    cfg = validate({"data": {"task": name, "task_options": {"width": 4}, "train_split": "train"},
                    "eval": {"sets": [{"task": name, "split": "test"}]}})
    assert tasks.splits(name) == ("train", "test") and tasks.pool_size(name, "test") == 4
    assert [p.answer for p in tasks.get(name, width=4).load("test")] == ["0", "1", "1", "0"]
    assert cfg.plugins()["task"].startswith(f"{name}#") and set(cfg.plugins()) == {"task"}
    with pytest.raises(ConfigError, match=r"data.train_split: got 'dev'; task 'my_tasks:Parity' has splits"):
        validate({"data": {"task": name, "train_split": "dev"}})


BAD = {
    "missing-module": ({"reward": {"name": "no_such_mod.rewards:fn"}}, "reward.name",
                       "cannot import module 'no_such_mod.rewards'"),
    "missing-attribute": ({"reward": {"name": "plug:nothing"}}, "reward.name", "has no attribute 'nothing'"),
    "reward-signature": ({"reward": {"name": "plug:two_args"}}, "reward.name",
                         r"has signature \(completions, problem\)(.|\n)*expected reward\(completions, problem, "
                         "verify, rng"),
    "reward-not-callable": ({"reward": {"name": "plug:NUMBER"}}, "reward.name", "expected a function reward"),
    "reward-options-model": ({"reward": {"name": "plug:modelled", "options": {"cap": -1}}}, "reward.options",
                             "option 'cap': got -1; Input should be greater than 0"),
    "reward-options-signature": ({"reward": {"name": "plug:two_opts", "options": {"cutoff": 1}}},
                                 "reward.options.cutoff", "got unknown option 'cutoff'(.|\n)*takes limit"),
    "reward-option-type": ({"reward": {"name": "plug:two_opts", "options": {"limit": "x"}}},
                           "reward.options.limit", "got 'x'; reward plug-in 'plug:two_opts' expects int"),
    "reward-format-gate-option": ({"reward": {"name": "plug:two_opts", "options": {"format_gate": False}}},
                                  "reward.options.format_gate", "expected reward.format_gate"),
    "estimator-signature": ({"algo": {"estimator": "plug:no_args"}}, "algo.estimator",
                            r"has signature \(\)(.|\n)*expected estimator\(rewards"),
    "estimator-options": ({"algo": {"estimator": "plug:est", "estimator_options": {"lam": 1}}},
                          "algo.estimator_options.lam", "unknown option 'lam'"),
    "shipped-with-options": ({"algo": {"estimator_options": {"scale": 1}}}, "algo.estimator_options",
                             "shipped estimator 'grpo'; expected {}"),
    "task-not-a-task": ({"data": {"task": "plug:NotATask"}}, "data.task", "lacks load, generate, verify"),
    "task-import-raises": ({"data": {"task": "broken:Task"}}, "data.task",
                           "importing module 'broken' raised ZeroDivisionError"),
    "unknown-bare-name": ({"reward": {"name": "shortish"}}, "reward.name",
                          "expected a shipped reward(.|\n)*entry point of group 'studykit.rewards'"),
}

PLUG = """
    from pydantic import BaseModel, Field

    NUMBER = 3

    def two_args(completions, problem):
        return [0.0] * len(completions)

    def two_opts(completions, problem, verify, rng, limit: int = 3):
        return [0.0] * len(completions)

    class _Cap(BaseModel):
        cap: int = Field(5, gt=0)

    def modelled(completions, problem, verify, rng, cap=5):
        return [0.0] * len(completions)

    modelled.Options = _Cap

    def no_args():
        return None

    def est(rewards, scale: float = 1.0):
        return rewards

    class NotATask:
        name = "x"
        template = "think"
        splits = ("train",)
"""


@pytest.mark.parametrize("case", sorted(BAD))
def test_params_check_refuses_bad_plugins_before_anything_runs(tmp_path, monkeypatch, capsys, case):
    loose_module(tmp_path, monkeypatch, "plug", PLUG)
    loose_module(tmp_path, monkeypatch, "broken", "x = 1 / 0\n")
    monkeypatch.chdir(tmp_path)  # the default store would be ./mlruns
    config, field, expected = BAD[case]
    db = tmp_path / "store" / "mlflow.db"
    config = {**config, "tracking": {"uri": f"sqlite:///{db}"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["params", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"BAD {path}" in err
    assert re.search(rf"{field}: (.|\n)*{expected}", err), err
    assert not db.exists() and not (tmp_path / "mlruns").exists()  # nothing written to MLflow


# ---- identity


def test_editing_a_plugin_changes_the_config_hash_and_the_code_run(tmp_path, monkeypatch):
    mod = loose_module(tmp_path, monkeypatch, "editable", """
        def reward(completions, problem, verify, rng):
            return [1.0] * len(completions)
    """)
    config = {"reward": {"name": f"{mod}:reward"}}
    first = validate(config)
    before = first.config_hash()
    assert validate(config).config_hash() == before
    plain = validate({}).config_hash()
    assert before != plain
    (tmp_path / f"{mod}.py").write_text("def reward(completions, problem, verify, rng):\n"
                                        "    return [0.5] * len(completions)  # edited\n")
    edited = validate(config)
    assert edited.config_hash() != before
    assert first.config_hash() == edited.config_hash()  # a config's hash follows the file on disk
    res = plugins.reward(f"{mod}:reward", verify=_exact)(["x"], PROBLEM, rng=np.random.default_rng(0))
    assert res.rewards.tolist() == [0.0]  # the edited code runs (gated: no format) ...
    res = plugins.reward(f"{mod}:reward", verify=_exact, format_gate=False)(["x"], PROBLEM,
                                                                             rng=np.random.default_rng(0))
    assert res.rewards.tolist() == [0.5]  # ... not the first import's
    assert validate({"reward": {"options": {}}}).config_hash() == plain  # empty options: shipped hashes unchanged


# ---- a real training run


def test_loose_plugins_train_end_to_end(tmp_path, toy_learner, example):
    cfg = validate(_tiny(tmp_path, toy_learner, reward={"name": REWARD, "options": {"max_chars": 200}},
                         algo={"estimator": ESTIMATOR, "estimator_options": {"scale": 1.0}}))
    result = trainer.train(cfg, progress=False)
    assert result.status == "FINISHED", result.reason
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.data.tags["plugin.reward"] == cfg.plugins()["reward"]
    assert run.data.tags["plugin.estimator"].startswith(f"{ESTIMATOR}#")
    assert run.data.tags["config_hash"] == cfg.config_hash()
    assert run.data.params["reward.name"] == REWARD
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "train/reward_mean")
    assert [m.step for m in history] == [1, 2]


def test_a_raising_plugin_fails_its_run_named(tmp_path, toy_learner, monkeypatch):
    mod = loose_module(tmp_path, monkeypatch, "raises", """
        def reward(completions, problem, verify, rng):
            raise KeyError("no such thing")
    """)
    cfg = validate(_tiny(tmp_path, toy_learner, reward={"name": f"{mod}:reward"}, train={"steps": 1}))
    result = trainer.train(cfg, progress=False)
    assert result.status == "FAILED"
    assert "reward plug-in 'raises:reward'" in result.reason and "KeyError" in result.reason
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert run.info.status == "FAILED" and "raises:reward" in run.data.tags["status_reason"]


def test_verl_export_translates_the_example_plugins(example):  # the rest: tests/test_plugins_verl.py
    from studykit.integrations.verl_translate import refusals

    cfg = validate({"reward": {"name": REWARD}, "algo": {"estimator": ESTIMATOR}})
    said = "\n".join(refusals(cfg))
    assert "plug-in" not in said and "unknown reward" not in said


def test_one_name_registered_twice_is_an_error(tmp_path, monkeypatch, example):
    _dist(tmp_path / "a", monkeypatch, "[studykit.rewards]\nshort = my_claim.rewards:short_answer\n", name="claims-a")
    _dist(tmp_path / "b", monkeypatch, "[studykit.rewards]\nshort = my_claim.estimators:centred_sign\n",
          name="claims-b")
    with pytest.raises(ConfigError, match="entry point 'short' of group 'studykit.rewards' is registered twice"):
        validate({"reward": {"name": "short"}})
