"""Every params file validates; bad keys/values name the field; invalid files create no MLflow store or run;
study expansion order and the notebooks' parameters cells."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml

from studykit.cli import commands as cli
from studykit.config.schema import ConfigError, RunConfig, load
from studykit.study.spec import expand, select
from studykit.study.runner import run_one, run_study

ROOT = Path(__file__).resolve().parent.parent
PARAMS = sorted((ROOT / "params").rglob("*.yaml"))
STUDIES = [p for p in PARAMS if "grid" in (yaml.safe_load(p.read_text()) or {})]
RUNS = [p for p in PARAMS if p not in STUDIES]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_params_tree_has_runs_studies_and_notebooks():
    names = {p.name for p in PARAMS}
    assert {"base.yaml", "toy.yaml", "paper.yaml", "smoke.yaml", "rq1_random.yaml"} <= names
    assert {p.name for p in NOTEBOOKS} == {"00_alignment.ipynb", "01_reward_signal.ipynb", "02_one_shot.ipynb",
                                           "03_negative_samples.ipynb", "10_compare.ipynb", "20_your_claim.ipynb"}


@pytest.fixture
def supplied_data(tmp_path, monkeypatch):
    """A working directory holding the files the paper's params ask the user to supply (validation checks that a
    math `path` exists)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/deepscaler.jsonl").write_text('{"problem": "1 + 1?", "answer": "2"}\n')
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", RUNS, ids=lambda p: str(p.relative_to(ROOT)))
def test_run_files_validate(path, supplied_data):
    assert isinstance(load(path), RunConfig)


def test_the_paper_file_names_its_missing_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"data\.task_options\.path: got 'data/deepscaler\.jsonl'; expected an existing"):
        load(ROOT / "params/paper/base.yaml")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_study_files_expand(path, supplied_data):
    cells = expand(path)
    assert cells and len({c.config.config_hash() for c in cells}) == len(cells)
    assert all(c.notebook.is_file() for c in cells)


def test_toy_base_matches_the_brief():
    cfg = load(ROOT / "params/toy/base.yaml")
    assert (cfg.model.name, cfg.train.lr) == ("toy:strong", 1e-4)
    assert (cfg.train.prompts_per_step, cfg.train.group_size, cfg.train.mini_batches) == (16, 8, 2)
    assert (cfg.train.steps, cfg.eval.every, cfg.train.max_new_tokens, cfg.eval.ks) == (100, 20, 16, [1, 4, 16])
    assert (cfg.eval.sets[0].limit, cfg.eval.n_samples, cfg.algo.kl_coef) == (128, 16, 0.0)


def test_toy_study_grid_and_order():
    cells = expand(ROOT / "params/studies/toy.yaml")
    names = [c.name for c in cells]
    assert len(cells) == 3 + 3 * 12 * 2 + (2 * 2 * 2 + 2 * 2)  # alignment + grid + ablations
    for model in ("strong", "weak-method", "weak-skill"):
        for seed in (0, 1):
            one = names.index(f"one_shot-{model}-toy-s{seed}")
            gt = names.index(f"ground_truth-{model}-toy-s{seed}")
            assert gt < one and f"ground_truth-{model}-toy-s{seed}" in cells[one].after
            assert f"alignment-{model}-toy" in cells[one].after
    by = {c.name: c.config for c in cells}
    assert by["one_shot-strong-toy-s1"].data.selection == "one_shot" and by["one_shot-strong-toy-s1"].train.seed == 1
    # the one-shot cell is pinned to the ground-truth cell of its own model, task and seed (not an ablation's)
    pinned = by["one_shot-strong-toy-s1"].data.one_shot.source_config_hash
    assert pinned == by["ground_truth-strong-toy-s1"].config_hash() != by["mb4x4-ground_truth-strong-toy-s1"].config_hash()
    from studykit.engine.one_shot import baseline_config

    assert baseline_config(by["one_shot-strong-toy-s1"]).data.one_shot.source_config_hash is None
    assert by["nsr-weak-skill-toy-s0"].algo.estimator == "nsr" and by["nsr-weak-skill-toy-s0"].rq == "rq3"
    for zhu in ("nsr_reinforce", "psr_reinforce", "w_reinforce"):  # Zhu et al.'s family trains without the filter
        assert by[f"{zhu}-strong-toy-s0"].algo.dynamic_sampling is False
    assert by["nsr-strong-toy-s0"].algo.dynamic_sampling is True
    assert by["noclip-random-strong-toy-s0"].algo.clip is False
    assert by["noclip-random-strong-toy-s0"].condition == "random@noclip"
    assert by["mb4x4-ground_truth-weak-method-toy-s1"].train.epochs == 4
    assert by["alignment-weak-skill-toy"].rq == "alignment" and by["alignment-weak-skill-toy"].train.steps == 0


def test_select_by_glob_and_substring():
    cells = expand(ROOT / "params/studies/toy.yaml")
    chosen = select(cells, "random-strong-*")
    assert [c.name for c in chosen] == ["random-strong-toy-s0", "random-strong-toy-s1"]
    assert all(c.after == [] for c in chosen)  # predecessors outside the selection are dropped
    with pytest.raises(ConfigError, match="matches no cell"):
        select(cells, "nothing-like-this")


def _write(tmp_path, name, data) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_run_key_and_value_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.stepz: unknown key"):
        load(_write(tmp_path, "a.yaml", {"train": {"stepz": 3}}))
    with pytest.raises(ConfigError, match=r"reward\.name: got 'nope'"):
        load(_write(tmp_path, "b.yaml", {"reward": {"name": "nope"}}))


def test_dynamic_sampling_defaults_off_for_zhu_et_al_estimators():
    from studykit.config.schema import validate

    for est in ("w_reinforce", "nsr_reinforce", "psr_reinforce"):
        assert validate({"algo": {"estimator": est}}).algo.dynamic_sampling is False
        asked = validate({"algo": {"estimator": est, "dynamic_sampling": True,
                                   "allow_dynamic_sampling_with_reinforce": True}})
        assert asked.algo.dynamic_sampling is True
    for est in ("grpo", "dr_grpo", "nsr", "psr"):
        assert validate({"algo": {"estimator": est}}).algo.dynamic_sampling is True


def test_reinforce_with_dynamic_sampling_is_refused_unless_asked_for_by_name(monkeypatch):
    # Regression (issue 20): a base file's `dynamic_sampling: true` reached W-REINFORCE's cells in the paper grid.
    import hashlib

    from studykit.config.schema import REINFORCE_ESTIMATORS, validate

    real_sha256 = hashlib.sha256

    for est in REINFORCE_ESTIMATORS:
        with pytest.raises(ConfigError, match=r"algo\.dynamic_sampling: got true with algo\.estimator .*"
                                              r"algo\.allow_dynamic_sampling_with_reinforce: true"):
            validate({"algo": {"estimator": est, "dynamic_sampling": True}})
    for algo in ({"estimator": "grpo"}, {"estimator": "w_reinforce", "dynamic_sampling": False}):
        with pytest.raises(ConfigError, match=r"algo\.allow_dynamic_sampling_with_reinforce: got true"):
            validate({"algo": {**algo, "allow_dynamic_sampling_with_reinforce": True}})  # would change nothing
    # the permission is not in the config hash: cells without it keep theirs, and the asked-for cell differs only
    # through dynamic_sampling itself
    hashed = []
    monkeypatch.setattr(hashlib, "sha256", lambda data: hashed.append(data.decode()) or real_sha256(data))
    plain = validate({"algo": {"estimator": "w_reinforce"}})
    plain.config_hash()
    assert '"dynamic_sampling": false' in hashed[0] and "allow_dynamic" not in hashed[0]
    monkeypatch.undo()
    asked = validate({"algo": {"estimator": "w_reinforce", "dynamic_sampling": True,
                               "allow_dynamic_sampling_with_reinforce": True}})
    assert asked.config_hash() != plain.config_hash()


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_shipped_studies_never_filter_groups_under_reinforce(study, supplied_data):
    # Regression (issue 20): expanding params/studies/paper.yaml gave w_reinforce cells dynamic_sampling True.
    from studykit.config.schema import REINFORCE_ESTIMATORS

    cells = expand(study)
    zhu = [c for c in cells if c.config.algo.estimator in REINFORCE_ESTIMATORS]
    assert all(not c.config.algo.dynamic_sampling for c in zhu), [c.name for c in zhu if c.config.algo.dynamic_sampling]
    if study.name in ("paper.yaml", "toy.yaml"):
        assert zhu  # the grids that hold the family are checked, not skipped


def test_kl_and_vllm_sleep_are_accepted_now_that_the_engine_does_them():
    # Regression (issue 10): kl_coef != 0 and enable_sleep_mode were refused because the engine ignored them.
    from studykit.config.schema import validate

    assert validate({"algo": {"kl_coef": 0.05}}).algo.kl_coef == 0.05
    cfg = validate({"model": {"finetune": "lora"},
                    "train": {"sampler": "vllm", "sampler_options": {"enable_sleep_mode": True}}})
    assert cfg.train.sampler_options["enable_sleep_mode"] is True


@pytest.mark.parametrize("section,value,field", [
    ("train", {"sampler_options": {"enable_sleep_mode": True}}, r"enable_sleep_mode: got unknown option.*hf"),
    ("algo", {"tis_cap": 2.0, "old_logprobs": "sampler"}, r"algo\.tis_cap.*old_logprobs"),
    ("algo", {"tis_cap": 0.5}, r"algo\.tis_cap"),
    ("train", {"micro_batch_size": 0}, r"train\.micro_batch_size"),
])
def test_settings_that_cannot_work_are_refused(section, value, field):
    from studykit.config.schema import validate

    with pytest.raises(ConfigError, match=field):
        validate({section: value})


# Hashes of the shipped configs before issue 10 added settings: finished cells must still be found by hash.
# The paper file (vllm + qlora) left this list in issue 20: TIS is now on by default there, which changes its
# objective; with `tis_cap: null` it keeps its old hash (test_tis_is_on_by_default_for_vllm_with_qlora).
PINNED_HASHES = {"params/toy/base.yaml": "59a394fa189b", "params/toy/rq1_random.yaml": "afa4cea33872",
                 "params/toy/rq2_one_shot.yaml": "a0b05b616eba"}


def test_new_gpu_settings_leave_existing_config_hashes_alone(supplied_data):
    from studykit.config.schema import validate

    assert RunConfig().config_hash() == "4b961a29bb5b"
    for path, want in PINNED_HASHES.items():
        assert load(ROOT / path).config_hash() == want, path
    base = RunConfig().model_dump(mode="json")
    knobs = {"train": {"micro_batch_size": 3, "logprob_chunk": 64, "sampler": "vllm",
                       "sampler_options": {"enable_sleep_mode": True}},
             "model": {"gradient_checkpointing": True, "finetune": "lora"}}
    plain = validate({"train": {"sampler": "vllm"}, "model": {"finetune": "lora"}})
    assert validate(knobs).config_hash() == plain.config_hash()  # execution knobs: not in the hash
    assert validate({"algo": {"tis_cap": 2.0}}).config_hash() != RunConfig().config_hash()  # a set cap is
    assert validate({"algo": {"tis_cap": None}}).config_hash() == RunConfig().config_hash()
    assert base["train"]["micro_batch_size"] is None and base["algo"]["tis_cap"] is None


def test_tis_is_on_by_default_for_vllm_with_qlora(supplied_data):
    # Regression (issue 20, item 4): vLLM samples from the bf16 base + adapter while a qlora trainer differentiates
    # through the NF4 base; nothing corrected the mismatch (tis_cap None, clipping sees the trainer only).
    from studykit.config.schema import TIS_CAP_QLORA_VLLM, validate

    pairing = {"model": {"finetune": "qlora"}, "train": {"sampler": "vllm"}}
    assert validate(pairing).algo.tis_cap == TIS_CAP_QLORA_VLLM == 2.0
    assert load(ROOT / "params/paper/base.yaml").algo.tis_cap == 2.0
    resolved = validate(pairing)
    assert validate(resolved.model_dump(mode="json")).config_hash() == resolved.config_hash()  # stable round trip
    assert validate({**pairing, "algo": {"tis_cap": 3.0}}).algo.tis_cap == 3.0  # a given cap is kept
    off = load(ROOT / "params/paper/base.yaml", {"algo": {"tis_cap": None}})
    assert off.algo.tis_cap is None and off.config_hash() == "d4f94c0ced20"  # written-out null: off, old hash
    assert validate({**pairing, "algo": {"old_logprobs": "sampler"}}).algo.tis_cap is None  # weights would be 1
    for other in ({"model": {"finetune": "lora"}, "train": {"sampler": "vllm"}}, {"model": {"finetune": "qlora"}}):
        assert validate(other).algo.tis_cap is None  # same-precision or same-process sampling: unchanged hashes


def test_paper_defaults_for_decay_and_warmup():
    cfg = RunConfig()
    assert (cfg.train.weight_decay, cfg.train.warmup_steps) == (0.1, 10)  # the paper's verl recipe


def _study(tmp_path, **changes) -> dict:
    data = {"name": "bad", "base": str(ROOT / "params/toy/smoke_base.yaml"),
            "grid": {"models": ["toy:strong"], "seeds": [0]},
            "conditions": {"ground_truth": {"rq": "rq1"},
                           "nsr": {"rq": "rq3", "overrides": {"algo": {"estimator": "nsr"}}}}}
    data.update(changes)
    return data


def test_bad_study_fields_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"grid\.modelz: unknown key"):
        expand(_write(tmp_path, "s1.yaml", _study(tmp_path, grid={"models": ["toy:strong"], "modelz": []})))
    with pytest.raises(ConfigError, match=r"conditions\.x\.rq"):
        expand(_write(tmp_path, "s2.yaml", _study(tmp_path, conditions={"x": {"rq": "rq9"}})))
    bad_override = {"ground_truth": {"rq": "rq1"}, "nsr": {"rq": "rq3", "overrides": {"algo": {"estimator": "nzr"}}}}
    with pytest.raises(ConfigError, match=r"cell nsr-strong-toy-s0(.|\n)*algo\.estimator"):
        expand(_write(tmp_path, "s3.yaml", _study(tmp_path, conditions=bad_override)))
    twins = {"models": {"toy:strong": {}, "alias": {"model": {"name": "toy:strong"}}}, "seeds": [0]}
    with pytest.raises(ConfigError, match="same config"):
        expand(_write(tmp_path, "s4.yaml", _study(tmp_path, grid=twins)))


def test_invalid_files_create_no_mlflow_store(tmp_path, monkeypatch, capsys):
    db = tmp_path / "store" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.chdir(tmp_path)
    bad_study = _write(tmp_path, "s.yaml", _study(tmp_path, conditions={"ground_truth": {"rq": "rq1", "overrides":
                                                                         {"train": {"lr": -1}}}}))
    bad_run = _write(tmp_path, "r.yaml", {"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"train\.lr"):
        run_study(bad_study, workers=1)
    with pytest.raises(ConfigError, match=r"train\.steps"):
        run_one(ROOT / "notebooks/01_reward_signal.ipynb", bad_run)
    assert cli.main(["study", str(bad_study)]) == 2
    assert cli.main(["params", "check", str(bad_run), str(ROOT / "params/toy/base.yaml")]) == 1
    assert "train.steps" in capsys.readouterr().err
    # issue 9: what used to pass validation and fail minutes later (some leaving an experiment or a FAILED run)
    runs = {"split": {"eval": {"sets": [{"task": "aime24", "split": "train"}]}},
            "preset": {"model": {"name": "toy:medium"}},
            "knob": {"model": {"name": "toy:custom", "toy": {"hiden": 1}}},
            "sampler": {"train": {"sampler_options": {"max_batchh": 4}}},
            "path": {"data": {"task": "math", "task_options": {"path": "missing.jsonl"}}},
            "eval_math": {"eval": {"sets": [{"task": "math"}]}},
            "index": {"data": {"selection": "one_shot", "one_shot": {"rule": "index", "index": 5000}}},
            "alignment_k": {"eval": {"ks": [4, 16], "alignment_k": 2}},
            "escape": {"study": "../../escaped"},
            "uri": {"tracking": {"uri": "nosuchdb://x"}},
            "bool": {"train": {"steps": True}}}
    for name, data in runs.items():
        path = _write(tmp_path, f"r_{name}.yaml", data)
        with pytest.raises(ConfigError):
            run_one(ROOT / "notebooks/01_reward_signal.ipynb", path)
        assert cli.main(["run", str(ROOT / "notebooks/00_alignment.ipynb"), "-f", str(path)]) == 2
    (tmp_path / "r_dup.yaml").write_text("train: {steps: 1}\ntrain: {steps: 2}\n")
    (tmp_path / "r_empty.yaml").write_text("")
    for name in ("r_dup.yaml", "r_empty.yaml"):
        with pytest.raises(ConfigError, match="duplicate key|empty"):
            run_one(ROOT / "notebooks/01_reward_signal.ipynb", tmp_path / name)
    studies = {"notebook": _study(tmp_path, notebooks={"rq1": "missing.ipynb"}),
               "compare": _study(tmp_path, notebooks={"compare": "missing.ipynb"}),
               "name": _study(tmp_path, name="../../escaped"),
               "split": _study(tmp_path, conditions={"ground_truth": {"rq": "rq1", "overrides":
                                                                      {"data": {"train_split": "dev"}}}})}
    for name, data in studies.items():
        path = _write(tmp_path, f"s_{name}.yaml", data)
        with pytest.raises(ConfigError):
            run_study(path, workers=1)
        assert cli.main(["study", str(path)]) == 2
    assert not db.exists() and not (tmp_path / "mlruns").exists() and not (tmp_path / "outputs").exists()
    assert not (tmp_path.parent.parent / "escaped").exists()


def test_dry_run_plans_without_touching_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    summary = run_study(ROOT / "params/studies/smoke.yaml", dry_run=True)
    assert [o.status for o in summary.outcomes] == ["planned"] * 3 and summary.exit_code == 0
    assert list(tmp_path.iterdir()) == []


def _builder():
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_build", ROOT / "notebooks/_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameters(nb_path: Path) -> tuple[int, dict]:
    nb = nbformat.read(nb_path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    values = {}
    for node in ast.parse(tagged[0].source).body:
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return len(tagged), values


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_one_current_parameters_cell_and_no_outputs(nb_path):
    count, values = _parameters(nb_path)
    assert count == 1
    if nb_path.name == "10_compare.ipynb":
        assert set(values) == {"study_file", "uri", "thresholds"}
    elif nb_path.name == "20_your_claim.ipynb":  # a study of its own, sized by `size` (tests/test_notebooks.py)
        assert set(values) == {"size", "max_chars", "predicts", "workers", "uri", "example"}
        assert values["size"] == "full" and values["uri"] is None
    else:
        assert set(values) == set(RunConfig.model_fields)  # one variable per section: papermill replaces each
        assert values == _builder().defaults(nb_path.name), "stale notebook: run python notebooks/_build.py"
        assert values["train"]["steps"] <= 20 and values["model"]["name"].startswith("toy:")  # a laptop demo
    nb = nbformat.read(nb_path, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        compile(cell.source, f"{nb_path.name} code cell {i}", "exec")  # a builder quoting slip fails here, not in a study
