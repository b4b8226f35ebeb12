"""Malformed run and study files fail `studykit params check` with `field: got X; expected Y` (issue 9), every bad file
is reported, names that become paths are safe, repeated YAML keys name file and line, study-relative notebooks
resolve against the study's folder, and valid configs keep their config hash."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from studykit.cli import commands as cli
from studykit.config.schema import ConfigError, RunConfig, load, validate
from studykit.study.spec import expand

ROOT = Path(__file__).resolve().parent.parent
BASE = str(ROOT / "params/toy/smoke_base.yaml")
TMP = "@TMP@"  # replaced by the test's tmp_path in a row's text


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ImportError:
        return True


def _needs_missing(module: str):
    return pytest.mark.skipif(not _missing(module), reason=f"{module} is installed here")


def study(**changes) -> dict:
    data = {"name": "v", "base": BASE, "grid": {"models": ["toy:strong"], "seeds": [0]},
            "conditions": {"ground_truth": {"rq": "rq1"}, "random": {"rq": "rq1", "overrides": {"reward": {"name": "random"}}}}}
    data.update(changes)
    return data


def one_shot(index: int, **data) -> dict:
    return {"data": {"selection": "one_shot", "one_shot": {"rule": "index", "index": index}, **data}}


# (id, file content: a mapping dumped as YAML, or raw text / bytes, field the error names, fragment of what is allowed)
RUN_ROWS = [
    ("steps-bool", {"train": {"steps": True}}, "train.steps", "integer, not a boolean"),
    ("steps-str", {"train": {"steps": "many"}}, "train.steps", "expected an integer"),
    ("lr-inf", {"train": {"lr": float("inf")}}, "train.lr", "finite number"),
    ("lr-nan", {"train": {"lr": float("nan")}}, "train.lr", "finite number"),
    ("lr-bool", {"train": {"lr": True}}, "train.lr", "not a boolean"),
    ("lr-zero", {"train": {"lr": 0}}, "train.lr", "greater than 0"),
    ("clip-low-one", {"algo": {"clip_low": 1.0}}, "algo.clip_low", "less than 1"),
    ("clip-low-negative", {"algo": {"clip_low": -0.1}}, "algo.clip_low", "greater than or equal to 0"),
    ("kl", {"algo": {"kl_coef": -0.1}}, "algo.kl_coef", "greater than or equal to 0"),
    ("task", {"data": {"task": "mathh"}}, "data.task", "toy, math500, aime24"),
    ("eval-task", {"eval": {"sets": [{"task": "nope"}]}}, "eval.sets.0.task", "math500"),
    ("split", {"data": {"train_split": "dev"}}, "data.train_split", "splits train, test"),
    ("split-default", {"data": {"task": "math500"}}, "data.train_split", "splits test"),
    ("eval-split", {"eval": {"sets": [{"task": "aime24", "split": "train"}]}}, "eval.sets.0.split", "splits test"),
    ("template", {"data": {"template": "chat"}}, "data.template", "think, boxed, raw"),
    ("toy-preset", {"model": {"name": "toy:medium"}}, "model.name", "strong, weak-method, weak-skill, contaminated, custom"),
    ("toy-knob-name", {"model": {"name": "toy:custom", "toy": {"hiden": 3}}}, "model.toy.hiden", "sum_share"),
    ("toy-knob-preset", {"model": {"name": "toy:strong", "toy": {"steps": 3}}}, "model.toy", "toy:custom"),
    ("toy-knob-value", {"model": {"name": "toy:custom", "toy": {"num_heads": 3}}}, "model.toy", "must divide"),
    ("toy-knob-bool", {"model": {"name": "toy:custom", "toy": {"steps": True}}}, "model.toy.steps", "not a boolean"),
    ("toy-knob-range", {"model": {"name": "toy:custom", "toy": {"slip_rate": 2}}}, "model.toy.slip_rate", "less than"),
    ("model-folder", {"model": {"name": "./no-such-model"}}, "model.name", "existing model folder"),
    ("sampler-key", {"train": {"sampler_options": {"max_batchh": 4}}}, "train.sampler_options.max_batchh", "max_batch"),
    ("sampler-type", {"train": {"sampler_options": {"max_batch": "4"}}}, "train.sampler_options.max_batch", "int"),
    ("sampler-policy", {"train": {"sampler_options": {"policy": 1}}}, "train.sampler_options.policy", "itself"),
    ("sampler-sleep", {"train": {"sampler_options": {"enable_sleep_mode": True}}},
     "train.sampler_options.enable_sleep_mode", "unknown option"),
    ("vllm-type", {"model": {"finetune": "lora"}, "train": {"sampler": "vllm", "sampler_options":
                   {"gpu_memory_utilization": "half"}}}, "train.sampler_options.gpu_memory_utilization", "float"),
    ("vllm-full", {"train": {"sampler": "vllm"}}, "train.sampler", "lora"),
    ("math-path", {"data": {"task": "math", "task_options": {"path": "no/such.jsonl"}}},
     "data.task_options.path", "existing .jsonl"),
    ("math-suffix", {"data": {"task": "math", "task_options": {"path": f"{TMP}/rows.txt"}}},
     "data.task_options.path", ".jsonl, .ndjson"),
    ("math-no-path", {"data": {"task": "math"}}, "data.task_options", "needs path="),
    ("task-option", {"data": {"task_options": {"bogus": 1}}}, "data.task_options.bogus", "takes none"),
    ("math-option", {"data": {"task": "math500", "train_split": "test", "task_options": {"timeout": 1}}},
     "data.task_options.timeout", "timeout_s"),
    ("logic-difficulty", {"data": {"task": "logic", "task_options": {"difficulty": 7}}}, "data.task_options", "(1, 2, 3)"),
    ("eval-needs-path", {"eval": {"sets": [{"task": "math"}]}}, "eval.sets.0.task", "needs path="),
    ("eval-sets-empty", {"eval": {"sets": []}}, "eval.sets", "at least 1"),
    ("eval-ks-empty", {"eval": {"ks": []}}, "eval.ks", "at least 1"),
    ("eval-ks-range", {"eval": {"ks": [1, 32]}}, "eval.ks", "between 1 and eval.n_samples=16"),
    ("alignment-k", {"eval": {"ks": [4, 16], "alignment_k": 2}}, "eval.alignment_k", "at least 4"),
    ("alignment-k-above", {"eval": {"n_samples": 4, "ks": [1, 4], "alignment_k": 100}}, "eval.alignment_k",
     "at most 4, the largest of eval.ks"),  # issue 20: it labelled alignment with pass@4, silently
    ("eval-labels", {"eval": {"sets": [{"task": "toy"}, {"task": "toy", "split": "train"}]}}, "eval.sets", "twice"),
    ("eval-limit-bool", {"eval": {"sets": [{"task": "toy", "limit": True}]}}, "eval.sets.0.limit", "integer"),
    ("eval-name", {"eval": {"sets": [{"task": "toy", "name": "a/b"}]}}, "eval.sets.0.name", "letters, digits"),
    ("one-shot-index", one_shot(1024), "data.one_shot.index", "below 1024"),
    ("one-shot-capped", one_shot(8, train_size=8), "data.one_shot.index", "below 8"),
    ("one-shot-amc", one_shot(40, task="amc23", train_split="test"), "data.one_shot.index", "below 40"),
    ("checkpoint-file", {"tracking": {"checkpoint_dir": f"{TMP}/afile"}}, "tracking.checkpoint_dir", "is a file"),
    ("checkpoint-under-file", {"tracking": {"checkpoint_dir": f"{TMP}/afile/ckpt"}}, "tracking.checkpoint_dir",
     "is a file"),
    ("study-escape", {"study": "../../escaped"}, "study", "letters, digits"),
    ("experiment", {"tracking": {"experiment": "a/b"}}, "tracking.experiment", "letters, digits"),
    ("claim", {"claim": "two words"}, "claim", "letters, digits"),
    ("condition", {"condition": "../x"}, "condition", "letters, digits"),
    pytest.param("uri-postgres", {"tracking": {"uri": "postgresql://u@localhost/db"}}, "tracking.uri", "psycopg2",
                 marks=_needs_missing("psycopg2"), id="uri-postgres"),
    pytest.param("uri-mysql", {"tracking": {"uri": "mysql://u@localhost/db"}}, "tracking.uri", "MySQLdb",
                 marks=_needs_missing("MySQLdb"), id="uri-mysql"),
    ("uri-scheme", {"tracking": {"uri": "sqlite3:///x.db"}}, "tracking.uri", "sqlite://"),
    ("seed", {"train": {"seed": -1}}, "train.seed", "greater than or equal to 0"),
    ("resume", {"tracking": {"resume": "yes"}}, "tracking.resume", "true or false"),
    ("section", {"trian": {"steps": 3}}, "trian", "unknown key; expected one of study, rq, claim"),
    ("key", {"train": {"stepz": 3}}, "train.stepz", "unknown key; expected one of steps"),
    ("reward", {"reward": {"name": "nope"}}, "reward.name", "'ground_truth'"),
    ("empty", "", "is empty", "mapping of sections"),
    ("comments-only", "# nothing here\n", "is empty", "mapping of sections"),
    ("duplicate-key", "study: a\ntrain: {steps: 3}\ntrain: {steps: 4}\n", "line 3: duplicate key 'train'",
     "first given on line 2"),
    ("binary", b"\xff\xfe\x00\x01\x02binary", "not a UTF-8 text file", "YAML params file"),
    ("top-list", "- a\n- b\n", "got a list at the top level", "mapping of sections"),
    ("not-yaml", "train: {steps: 3\n", "not valid YAML", "line"),
]

STUDY_ROWS = [
    ("study-name", study(name="../../escaped"), "name", "letters, digits"),
    ("study-dotdot", study(name=".."), "name", "letters, digits"),
    ("study-dup-condition", "name: v\nbase: b.yaml\ngrid: {models: [toy:strong]}\nconditions:\n"
     "  random: {rq: rq1}\n  random: {rq: rq1}\n", "line 6: duplicate key 'random'", "first given on line 5"),
    ("study-condition-key", study(conditions={"ground_truth": {"rq": "rq1"}, "a/b": {"rq": "rq1"}}),
     "conditions.a/b", "letters, digits"),
    ("study-claim", study(conditions={"ground_truth": {"rq": "rq1", "claim": "x/y"}}),
     "conditions.ground_truth.claim", "letters, digits"),
    ("study-ablation-name", study(ablations=[{"name": "../x", "conditions": ["random"]}]), "ablations.0.name",
     "letters, digits"),
    ("study-task-label", study(grid={"models": ["toy:strong"], "tasks": {"../t": {}}}), "grid.tasks.../t", "matching"),
    ("study-model-name", study(grid={"models": ["org/my model"]}), "grid.models.org/my model", "letters, digits"),
    ("study-seeds-empty", study(grid={"models": ["toy:strong"], "seeds": []}), "grid.seeds", "at least 1"),
    ("study-seed-bool", study(grid={"models": ["toy:strong"], "seeds": [True]}), "grid.seeds.0", "not a boolean"),
    ("study-models-empty", study(grid={"models": []}), "grid.models", "at least 1"),
    ("study-notebook-role", study(notebooks={"rq9": "x.ipynb"}), "notebooks.rq9", "alignment, rq1, rq2"),
    ("study-notebook-missing", study(notebooks={"rq1": "missing.ipynb"}), "notebooks.rq1",
     "relative to the study file's folder"),
    ("study-compare-notebook", study(notebooks={"compare": "nope.ipynb"}), "notebooks.compare", "study file's folder"),
    ("study-base", study(base="nope.yaml"), "base", "relative to the study file's folder"),
    ("study-conditions-empty", study(conditions={}), "conditions", "at least 1"),
    ("study-baseline", study(baseline="gt"), "baseline", "one of the conditions ground_truth, random"),
    ("study-ablation-condition", study(ablations=[{"name": "x", "conditions": ["nope"]}]), "ablations.0.conditions",
     "one of the conditions"),
    ("study-alignment-task", study(alignment={"tasks": ["nope"]}), "alignment.tasks", "grid task labels toy"),
    ("study-compare-order", study(compare={"holds": 0.2, "partial": 0.5}), "compare.partial", "at most holds=0.2"),
    ("study-compare-inf", study(compare={"holds": float("inf")}), "compare.holds", "finite"),
    ("study-cell-split", study(conditions={"ground_truth": {"rq": "rq1", "overrides": {"data": {"train_split": "x"}}}}),
     "data.train_split", "splits train, test"),
    ("study-cell-int", study(ablations=[{"name": "x", "conditions": ["random"], "overrides": {"train": {"steps": True}}}]),
     "train.steps", "not a boolean"),
    ("study-mixed", {**study(), "train": {"steps": 3}}, "mixes study keys", "run keys"),
    ("study-unknown", study(grid={"models": ["toy:strong"], "modelz": []}), "grid.modelz", "models, tasks, seeds"),
    ("study-empty-base", study(base=f"{TMP}/empty.yaml"), "is empty", "mapping of sections"),
]


def _write(tmp_path: Path, name: str, content) -> Path:
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "rows.txt").write_text('{"problem": "1+1", "answer": "2"}\n')
    (tmp_path / "empty.yaml").write_text("")
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        path.write_text(text.replace(TMP, str(tmp_path)))
    return path


def _check_fails(path: Path, field: str, allowed: str, capsys) -> str:
    assert cli.main(["params", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err, err
    assert re.search(rf"(^|\s|\.){re.escape(field)}(:|;|\s)", err), f"field {field!r} not named in:\n{err}"
    assert allowed in err, f"{allowed!r} not in:\n{err}"
    return err


@pytest.mark.parametrize("name,content,field,allowed", RUN_ROWS, ids=[r[0] if isinstance(r, tuple) else r.id
                                                                      for r in RUN_ROWS])
def test_malformed_run_files_are_refused_naming_the_field(name, content, field, allowed, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _check_fails(_write(tmp_path, f"{name}.yaml", content), field, allowed, capsys)


@pytest.mark.parametrize("name,content,field,allowed", STUDY_ROWS, ids=[r[0] for r in STUDY_ROWS])
def test_malformed_study_files_are_refused_naming_the_field(name, content, field, allowed, tmp_path, monkeypatch,
                                                            capsys):
    monkeypatch.chdir(tmp_path)
    _check_fails(_write(tmp_path, f"{name}.yaml", content), field, allowed, capsys)


def test_there_are_at_least_forty_malformed_cases():
    assert len(RUN_ROWS) + len(STUDY_ROWS) >= 40


def test_params_check_reports_every_bad_file_and_goes_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    bad = [_write(tmp_path, "a.yaml", {"train": {"steps": True}}),
           _write(tmp_path, "b.yaml", b"\xff\xfe\x00binary"),
           _write(tmp_path, "c.yaml", study(name="../up")),
           _write(tmp_path, "d.yaml", "")]
    good = ROOT / "params/toy/base.yaml"
    assert cli.main(["params", "check", str(bad[0]), str(good), *map(str, bad[1:]), str(tmp_path / "none.yaml")]) == 1
    out = capsys.readouterr()
    assert f"ok  {good}" in out.out
    for path in [*bad, tmp_path / "none.yaml"]:
        assert f"BAD {path}" in out.err, out.err
    assert "5 of 6 files invalid" in out.err
    assert cli.main(["params", "check", str(good)]) == 0


def test_a_study_name_cannot_escape_the_repository(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store/mlflow.db'}")
    from studykit.study.runner import run_one, run_study

    run_file = _write(work, "r.yaml", {"study": "../../escaped"})
    study_file = _write(work, "s.yaml", study(name="../../escaped"))
    with pytest.raises(ConfigError, match=r"study: got '\.\./\.\./escaped'; expected a name of letters"):
        run_one(ROOT / "notebooks/01_reward_signal.ipynb", run_file)
    with pytest.raises(ConfigError, match=r"name: got '\.\./\.\./escaped'"):
        run_study(study_file, workers=1)
    for bad in ("..", ".hidden", "a/b", "a b", "-x", ""):
        with pytest.raises(ConfigError, match=r"study: got"):
            validate({"study": bad})
    assert not (tmp_path / "escaped").exists() and not (work / "outputs").exists()
    assert not (tmp_path / "store").exists()
    assert validate({"study": "toy_v2.1-b"}).study == "toy_v2.1-b"


def test_duplicate_keys_name_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, "dup.yaml", "study: s\ntrain:\n  steps: 3\n  lr: 1.0e-4\n  steps: 5\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: line 5: duplicate key 'steps' \(first given on "
                                          r"line 3\)"):
        load(path)
    flow = _write(tmp_path, "flow.yaml", "train: {steps: 3, steps: 4}\n")
    with pytest.raises(ConfigError, match="line 1: duplicate key 'steps'"):
        load(flow)
    merged = _write(tmp_path, "merge.yaml", "common: &c {steps: 3}\n")  # anchors and merges are not duplicates
    from studykit.config.schema import load_yaml

    assert load_yaml(merged) == {"common": {"steps": 3}}
    merge = _write(tmp_path, "merge2.yaml", "a: &c {steps: 3, lr: 0.1}\nb: {<<: *c, steps: 4}\n")
    assert load_yaml(merge)["b"] == {"steps": 4, "lr": 0.1}


def test_study_notebooks_resolve_against_the_study_folder(tmp_path):
    folder = tmp_path / "studies"
    (folder / "nb").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks/01_reward_signal.ipynb", folder / "nb/mine.ipynb")
    path = _write(folder, "s.yaml", study(notebooks={"rq1": "nb/mine.ipynb"},
                                          conditions={"ground_truth": {"rq": "rq1"}}))
    cells = expand(path)
    assert [c.notebook for c in cells] == [(folder / "nb/mine.ipynb").resolve()]
    explicit = _write(folder, "t.yaml", study(conditions={"ground_truth": {"rq": "rq1", "notebook": "nb/mine.ipynb"}}))
    assert expand(explicit)[0].notebook == (folder / "nb/mine.ipynb").resolve()


def test_the_vllm_backend_signature_is_read_without_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    monkeypatch.delitem(sys.modules, "studykit.policy.sampling.vllm_backend", raising=False)
    module = importlib.import_module("studykit.policy.sampling.vllm_backend")
    assert hasattr(module, "VLLMSampler")
    cfg = validate({"model": {"finetune": "lora"}, "train": {"sampler": "vllm", "sampler_options":
                                                            {"gpu_memory_utilization": 0.3, "max_model_len": 4096,
                                                             "swap_space": 2}}})  # swap_space goes on to vllm.LLM
    assert cfg.train.sampler_options["gpu_memory_utilization"] == 0.3
    assert isinstance(sys.modules.get("vllm"), type(None))


def test_valid_configs_keep_their_hash(tmp_path, monkeypatch):
    # Pinned before issue 9's validators: stricter checks must not change what a valid config hashes to.
    assert RunConfig().config_hash() == "4b961a29bb5b"
    assert load(ROOT / "params/toy/base.yaml").config_hash() == "59a394fa189b"
    assert load(ROOT / "params/toy/smoke_base.yaml").config_hash() == "81e76adc07e5"


def test_studykit_config_imports_light():
    code = ("import sys, studykit.config.schema as c; c.validate({'model': {'name': 'toy:custom', 'toy': {'steps': 3, "
            "'warmup_steps': 1}}}); print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'vllm') "
            "if m in sys.modules))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_default_alignment_k_survives_a_round_trip_below_16():
    # The default (16 = the largest logged k up to 16) is exempt from "at most max(ks)": dumped configs carry it.
    from studykit.config import validate

    cfg = validate({"eval": {"n_samples": 4, "ks": [1, 4]}})
    assert validate(cfg.model_dump(mode="json")).eval.alignment_k == 16
    assert validate({"eval": {"n_samples": 8, "ks": [1, 4, 8], "alignment_k": 8}}).eval.alignment_k == 8
