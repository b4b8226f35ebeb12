"""`studykit export verl` writes verl's RL dataset schema (read back with pyarrow and pandas), a launch script with the
translated overrides, and a SCHEDULED MLflow run with studykit's tags; untranslatable settings are refused, each
named, before anything is written; `studykit import verl` maps verl's validation names and rescores its dumps into
studykit's eval metrics and per-problem counts. Uses a sqlite MLflow store in a temp folder (no verl import)."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studykit.tracking import experiment as tracking
from studykit.config.schema import validate
from studykit.integrations import verl_translate as tr
from studykit.integrations.verl_export import export
from studykit.integrations.verl_import import import_run, map_val_metric
from studykit.analysis.runs import load_counts

BASE = {
    "study": "verlt", "rq": "rq1", "claim": "ground_truth", "condition": "ground_truth",
    "model": {"name": "Qwen/Qwen2.5-7B", "finetune": "lora", "dtype": "bfloat16", "lora_rank": 8, "lora_alpha": 16},
    "data": {"task": "math500", "train_split": "test", "train_size": 10},
    "algo": {"clip_low": 0.2, "clip_high": 0.28},
    "train": {"steps": 3, "prompts_per_step": 8, "group_size": 4, "mini_batches": 2, "lr": 2e-6,
              "max_new_tokens": 512},
    "eval": {"sets": [{"task": "math500", "limit": 3}, {"task": "logic:dyck", "limit": 2, "name": "dyck"}],
             "n_samples": 2, "ks": [1, 2], "every": 0},
}


def cfg_of(**sections):
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        data[key] = data.get(key, {}) | value if isinstance(value, dict) else value
    return validate(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("verl_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.client(uri)
    return uri


@pytest.fixture(scope="module")
def exported(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("verl_export")
    cfg = cfg_of(tracking={"checkpoint_dir": str(out / "ckpt")})
    return cfg, export(cfg, out / "job", uri=store)


def test_parquet_has_verls_columns_and_types(exported):
    cfg, result = exported
    table = pq.read_table(result.out_dir / "train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    schema = table.schema
    assert schema.field("data_source").type == pa.string() and schema.field("ability").type == pa.string()
    assert schema.field("prompt").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    assert schema.field("reward_model").type.field("ground_truth").type == pa.string()
    extra = schema.field("extra_info").type
    assert extra.field("problem_id").type == pa.string() and extra.field("index").type == pa.int64()
    assert extra.field("reward").type.field("name").type == pa.string()
    df = pd.read_parquet(result.out_dir / "train.parquet")
    assert len(df) == 10 and set(df["data_source"]) == {"studykit/math500"} and set(df["ability"]) == {"math"}
    first = df.iloc[0]
    assert first["prompt"][0]["role"] == "user" and "<answer> </answer>" in first["prompt"][0]["content"]
    assert first["extra_info"]["question"] in first["prompt"][0]["content"]
    assert first["extra_info"]["reward"]["name"] == "ground_truth" and first["extra_info"]["reward"]["format_gate"]
    assert json.loads(first["extra_info"]["meta"])["task"] == "math500"
    val = pd.read_parquet(result.out_dir / "val.parquet")
    assert list(val["data_source"].value_counts().sort_index().items()) == [
        ("studykit/logic:dyck/dyck", 2), ("studykit/math500/math500", 3)]
    assert not any(r["reward"]["format_gate"] for r in val["extra_info"])  # evaluation scores correctness
    assert result.n_val == {"math500": 3, "dyck": 2}


def test_launch_script_carries_the_translated_run(exported):
    cfg, result = exported
    script = (result.out_dir / "launch.sh").read_text()
    subprocess.run(["bash", "-n", str(result.out_dir / "launch.sh")], check=True)
    for override in ("algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=True",
                     "actor_rollout_ref.actor.clip_ratio_low=0.2", "actor_rollout_ref.actor.clip_ratio_high=0.28",
                     "actor_rollout_ref.actor.loss_agg_mode=token-mean", "actor_rollout_ref.actor.use_kl_loss=False",
                     "algorithm.kl_ctrl.kl_coef=0.0", "algorithm.filter_groups.enable=True",
                     "data.train_batch_size=8", "actor_rollout_ref.actor.ppo_mini_batch_size=4",
                     "actor_rollout_ref.actor.optim.lr=2e-06", "trainer.total_training_steps=3",
                     "actor_rollout_ref.rollout.n=4", "actor_rollout_ref.rollout.temperature=1.0",
                     "data.max_response_length=512", "actor_rollout_ref.model.lora_rank=8",
                     "actor_rollout_ref.model.lora_alpha=16", "actor_rollout_ref.model.target_modules=all-linear",
                     "reward.custom_reward_function.path=pkg://studykit.integrations.verl",
                     "reward.custom_reward_function.name=compute_score", "'trainer.logger=[console,mlflow]'",
                     "trainer.test_freq=3", "trainer.validation_data_dir="):
        assert override in script, override
    assert f"export MLFLOW_RUN_ID={result.run_id}" in script and "export MLFLOW_EXPERIMENT_NAME=verlt" in script
    assert "studykit.cli.commands import verl" in script


def test_the_run_is_precreated_with_studykits_tags(exported, store):
    cfg, result = exported
    run = tracking.client(store).get_run(result.run_id)
    assert run.info.status == "SCHEDULED"
    tags = run.data.tags
    assert tags["config_hash"] == cfg.config_hash() and tags["engine"] == "verl"
    assert {k: tags[k] for k in ("study", "claim", "model", "task", "seed")} == {
        "study": "verlt", "claim": "ground_truth", "model": "Qwen/Qwen2.5-7B", "task": "math500", "seed": "0"}
    assert run.data.params["train.lr"] == "2e-06"


@pytest.mark.parametrize("algo,expected", [
    ({"estimator": "dr_grpo"}, ["algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=False"]),
    ({"estimator": "nsr"}, ["algorithm.adv_estimator=studykit_nsr",
                            "+ray_kwargs.ray_init.runtime_env.env_vars.VERL_USE_EXTERNAL_MODULES="
                            "studykit.integrations.verl_estimators"]),
    ({"estimator": "w_reinforce", "lam": 0.3}, ["algorithm.adv_estimator=studykit_w_reinforce",
                                                "algorithm.filter_groups.enable=False",
                                                "+ray_kwargs.ray_init.runtime_env.env_vars.STUDYKIT_W_REINFORCE_LAM=0.3"]),
    ({"kl_coef": 0.01, "agg": "seq-mean-token-sum"}, ["actor_rollout_ref.actor.use_kl_loss=True",
                                                      "actor_rollout_ref.actor.kl_loss_coef=0.01",
                                                      "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum"]),
])
def test_estimators_and_loss_settings_translate(algo, expected):
    got = tr.overrides(cfg_of(algo=algo), experiment="e", checkpoint_dir="/c")
    assert set(expected) <= set(got)


def test_untranslatable_settings_are_refused_each_by_name(tmp_path, store):
    cfg = cfg_of(model={"name": "toy:strong", "finetune": "qlora", "lora_dropout": 0.1},
                 reward={"name": "majority_vote"}, algo={"clip": False, "tis_cap": 2.0},
                 train={"mini_batches": 3}, eval={"max_new_tokens": 64})
    with pytest.raises(ValueError) as err:
        export(cfg, tmp_path / "job", uri=store)
    for field in ("model.name", "model.finetune", "model.lora_dropout", "reward.name", "algo.clip", "algo.tis_cap",
                  "train.mini_batches", "eval.max_new_tokens"):
        assert field in str(err.value), field
    assert not (tmp_path / "job").exists()
    exp = tracking.client(store).get_experiment_by_name("verlt")
    runs = tracking.client(store).search_runs([exp.experiment_id], "tags.model = 'toy:strong'")
    assert not runs  # no run created for a refused export


def test_verl_validation_names_map_to_studykits():
    sources = {"math500": "studykit/math500/math500", "dyck": "studykit/logic:dyck/dyck"}
    assert map_val_metric("val-core/studykit/math500/math500/acc/mean_at_16", sources) == "eval/math500/avg_at_16"
    assert map_val_metric("val-core/studykit/math500/math500/acc/mean@16", sources) == "eval/math500/avg_at_16"
    assert map_val_metric("val-aux/studykit/logic:dyck/dyck/acc/best_at_4/mean", sources) == "eval/dyck/verl_best_at_4"
    assert map_val_metric("val-aux/studykit/math500/math500/format/mean_at_16", sources) == "eval/math500/format_rate"
    for other in ("val-aux/studykit/math500/math500/acc/best_at_4/std", "val-aux/studykit/other/x/acc/mean_at_4",
                  "val-aux/studykit/math500/math500/reward/mean_at_4", "actor/pg_loss", "val-aux/num_turns/min"):
        assert map_val_metric(other, sources) is None, other


def _dump(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_import_rescores_validation_dumps_into_eval_metrics_and_counts(exported, store):
    from studykit.tasks import get as get_task

    cfg, result = exported
    val = pd.read_parquet(result.out_dir / "val.parquet")
    mlc = tracking.client(store)
    mlc.log_metric(result.run_id, "val-core/studykit/math500/math500/acc/mean_at_2", 0.5, step=0)  # verl's (wrong)
    mlc.log_metric(result.run_id, "val-core/studykit/math500/math500/acc/best_at_2/mean", 0.0, step=0)
    for step, right_first in ((0, False), (3, True)):  # step 0: nothing right; step 3: the first sample right
        rows = []
        for _, r in val.iterrows():
            info = r["extra_info"]
            answer = r["reward_model"]["ground_truth"]
            for j in range(2):
                text = f"<think>t</think> <answer>{answer if (right_first and j == 0) else 'zz'}</answer>"
                rows.append({"input": "p", "output": text, "gts": None, "score": 0.0, "step": step,
                             "studykit_set": info["split"], "studykit_problem_id": info["problem_id"], "uid": "u"})
        _dump(result.out_dir / "validation" / f"{step}.jsonl", rows)
    done = import_run(result.run_id, result.out_dir, uri=store, status="FINISHED")
    assert done.steps == [0, 3] and done.renamed == {
        "val-core/studykit/math500/math500/acc/best_at_2/mean": "eval/math500/verl_best_at_2"}
    assert done.mismatches == ["eval/math500/avg_at_2 step 0: verl 0.5000, studykit 0.0000"]
    run = mlc.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["alignment"].startswith("weak")
    m = run.data.metrics
    assert m["eval/math500/pass_at_1"] == 0.5 and m["eval/math500/pass_at_2"] == 1.0  # step 3 (latest)
    assert m["eval/dyck/pass_at_1"] == 0.5 and m["eval/math500/format_rate"] == 1.0
    hist = {x.step: x.value for x in mlc.get_metric_history(result.run_id, "eval/math500/pass_at_1")}
    assert hist == {0: 0.0, 3: 0.5}
    assert [(x.step, x.value) for x in mlc.get_metric_history(result.run_id, "eval/math500/avg_at_2")] == [
        (0, 0.0), (3, 0.5)]  # each step once: the rescoring, not verl's copy
    assert "avg_at_2 step 0" in run.data.tags["verl_import_mismatch"]
    counts = load_counts(result.run_id, "math500", uri=store)
    assert sorted(counts) == [0, 3] and counts[3].correct.tolist() == [1, 1, 1]
    assert counts[3].problem_ids == [p.id for p in get_task("math500").load("test")[:3]]


def test_import_refuses_a_dump_without_every_sample(exported, store, tmp_path):
    import shutil

    cfg, result = exported
    job = tmp_path / "job"
    shutil.copytree(result.out_dir, job, ignore=shutil.ignore_patterns("validation"))
    _dump(job / "validation" / "0.jsonl", [{"output": "x", "studykit_set": "math500", "studykit_problem_id": "math500-0"}])
    with pytest.raises(ValueError, match="without 2 completions"):
        import_run(result.run_id, job, uri=store)


def test_cli_export_and_its_refusal(tmp_path, capsys):
    import yaml

    from studykit.cli.commands import main

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE | {"tracking": {"checkpoint_dir": str(tmp_path / "ckpt")}}))
    assert main(["export", "verl", str(good), "--out", str(tmp_path / "job"), "--no-run"]) == 0
    out = capsys.readouterr().out
    assert "wrote 10 training and 5 evaluation problems (math500: 3, dyck: 2)" in out and "launch: bash" in out
    assert "MLFLOW_RUN_ID" not in (tmp_path / "job" / "launch.sh").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(BASE | {"reward": {"name": "self_certainty"}}))
    assert main(["export", "verl", str(bad), "--out", str(tmp_path / "job2"), "--no-run"]) == 2
    assert "reward.name: reward 'self_certainty' needs the completion's token log-probs" in capsys.readouterr().err
    assert not (tmp_path / "job2").exists()


def test_the_study_runner_leaves_an_exported_run_to_verl(store, tmp_path):
    from studykit.study import claims

    cfg = cfg_of(train={"seed": 5}, tracking={"checkpoint_dir": str(tmp_path / "ckpt")})
    run_id = export(cfg, tmp_path / "job", uri=store).run_id
    mlc = tracking.client(store)

    def settled():
        return claims.settle(cfg, store, tmp_path / "none.ipynb", wait_s=0)

    assert (settled().state, settled().run_id) == ("busy", run_id)  # SCHEDULED: verl has not started it
    mlc.update_run(run_id, status="RUNNING")
    assert settled().state == "busy" and mlc.get_run(run_id).info.status == "RUNNING"  # never reaped as stale
    mlc.set_terminated(run_id, "FINISHED")
    assert "not imported" in settled().note and mlc.get_run(run_id).info.status == "FINISHED"
    mlc.set_tag(run_id, "verl_imported", "0")
    assert (settled().state, settled().run_id) == ("done", run_id)  # no notebook needed
    assert claims.finished_run(cfg, store) == run_id


def test_a_study_cell_exports_with_the_studys_config_hash(tmp_path, capsys):
    import yaml

    from studykit.cli.commands import main
    from studykit.study.spec import expand

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE | {"tracking": {"checkpoint_dir": str(tmp_path / "c")}}))
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "verlt", "base": "base.yaml", "grid": {
        "models": {"Qwen/Qwen2.5-7B": {}}, "tasks": ["math500"], "seeds": [0]}, "conditions": {
        "ground_truth": {"rq": "rq1"}, "incorrect": {"rq": "rq1", "overrides": {"reward": {"name": "incorrect"}}}}}))
    cell = next(c for c in expand(study) if c.config.claim == "incorrect")
    assert main(["export", "verl", str(study), "--cell", cell.name, "--out", str(tmp_path / "job"), "--no-run"]) == 0
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert manifest["config_hash"] == cell.config.config_hash() and manifest["config"]["reward"]["name"] == "incorrect"
    assert main(["export", "verl", str(study), "--out", str(tmp_path / "job2"), "--no-run"]) == 2
    assert "--cell NAME expected" in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue 20: prompt lengths, verl 0.9.1


def test_max_prompt_length_covers_every_prompt_by_the_stated_estimate(tmp_path):
    # Regression (issue 20): launch.sh defaulted max_prompt_length to 1024 with filter_overlong_prompts=True, so verl
    # dropped longer prompts from train and validation while the manifest counted them.
    from studykit.integrations import verl_prompts

    cfg = cfg_of(model={"name": "studykit-test/not-cached-anywhere"}, data={"task": "korbench:counterfactual",
                 "train_split": "train", "train_size": 12}, eval={"sets": [{"task": "korbench:counterfactual"}]})
    result = export(cfg, tmp_path / "job", create_run=False)
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    prompts = manifest["prompt_tokens"]
    assert prompts["method"].startswith("estimate: ceil(characters / 3) + 64") and prompts["exact"] is False
    rows = [r for name in ("train", "val") for r in pd.read_parquet(result.out_dir / f"{name}.parquet")["prompt"]]
    longest = max(verl_prompts.estimate(list(r)) for r in rows)
    assert longest > 1024  # KOR-Bench Counterfactual prompts: the old default would have dropped them
    assert prompts["longest_train"] <= longest and max(prompts["longest_train"], prompts["longest_val"]) == longest
    limit = prompts["max_prompt_length"]
    assert limit >= longest and limit % 128 == 0 and limit - longest < 128 and prompts["rows_over_limit"] == 0
    script = (result.out_dir / "launch.sh").read_text()
    assert f'MAX_PROMPT_LENGTH="${{MAX_PROMPT_LENGTH:-{limit}}}"' in script and ":-1024" not in script
    assert "data.filter_overlong_prompts=False" in script and "filter_overlong_prompts=True" not in script
    assert any("left-truncated" in d and "estimate" in d for d in manifest["departures"])


def test_a_prompt_limit_below_the_longest_is_refused_with_the_count(tmp_path):
    cfg = cfg_of(model={"name": "studykit-test/not-cached-anywhere"})
    with pytest.raises(ValueError, match=r"max_prompt_length 40 would lose \d+ of 10 training and \d+ of 5 "
                                         r"evaluation prompts \(longest \d+ tokens, by estimate"):
        export(cfg, tmp_path / "job", create_run=False, max_prompt_length=40)
    assert not (tmp_path / "job").exists()
    done = export(cfg, tmp_path / "ok", create_run=False, max_prompt_length=4096)
    assert json.loads((done.out_dir / "manifest.json").read_text())["prompt_tokens"]["max_prompt_length"] == 4096


def test_the_launch_script_refuses_a_max_prompt_length_below_the_longest(tmp_path):
    cfg = cfg_of(model={"name": "studykit-test/not-cached-anywhere"})
    result = export(cfg, tmp_path / "job", create_run=False)
    env = {"PATH": "/usr/bin:/bin", "MAX_PROMPT_LENGTH": "16", "PYTHON": "false"}
    run = subprocess.run(["bash", str(result.out_dir / "launch.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "below the longest exported prompt" in run.stderr


def test_prompt_lengths_come_from_the_tokenizer_and_chat_template_when_local(tmp_path, tiny_model_dir):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    with pytest.raises(ValueError, match="no chat template"):  # verl renders every prompt with one
        export(cfg_of(model={"name": str(folder)}), tmp_path / "none", create_run=False)
    tok.chat_template = "{% for m in messages %}<bos> {{ m['role'] }} {{ m['content'] }} <eos> {% endfor %}"
    tok.save_pretrained(folder)
    result = export(cfg_of(model={"name": str(folder)}), tmp_path / "job", create_run=False)
    prompts = json.loads((result.out_dir / "manifest.json").read_text())["prompt_tokens"]
    assert prompts["exact"] is True and "chat template" in prompts["method"]
    train = pd.read_parquet(result.out_dir / "train.parquet")["prompt"]
    def ids(p):  # transformers 5 returns a BatchEncoding here, 4 a list (verl normalises both the same way)
        out = tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=True)
        return out["input_ids"] if hasattr(out, "keys") else out

    exact = max(len(ids(p)) for p in train)
    assert exact > 20  # the template's words and the instruction count, not a 2-key mapping
    assert prompts["longest_train"] == exact


def test_group_filter_reads_verls_canonical_reward_on_the_v1_trainer():
    # verl 0.9.1: `reward` is FILTER_GROUPS_REWARD_METRIC (the summed rm_scores = compute_score's `score`); only the
    # v1 trainer reads algorithm.filter_groups, so the export pins it.
    got = tr.overrides(cfg_of(), experiment="e", checkpoint_dir="/c")
    assert {"algorithm.filter_groups.enable=True", "algorithm.filter_groups.metric=reward",
            "trainer.use_v1=True"} <= set(got)
    assert not any("seq_final_reward" in o for o in got)


def test_lora_export_needs_no_safetensors_load_format():
    # LoRA with vLLM's dummy load_format works in 0.9.1 (the base is synced before the first validation); only
    # rollout.layered_summon would require rollout.load_format=safetensors, so it must not appear without it.
    got = tr.overrides(cfg_of(), experiment="e", checkpoint_dir="/c")
    assert "actor_rollout_ref.model.lora_rank=8" in got
    if any("layered_summon=True" in o for o in got):
        assert "actor_rollout_ref.rollout.load_format=safetensors" in got
    assert not any("load_format" in o or "layered_summon" in o for o in got)


def test_departures_name_the_dual_clip():
    deps = tr.departures(cfg_of())
    assert any(d.startswith("actor.clip_ratio_c 10000") and "dual-clip" in d for d in deps)
def _active_runs(uri):
    mlc = tracking.client(uri)
    return [r for e in mlc.search_experiments() for r in mlc.search_runs([e.experiment_id])]


def test_an_out_that_is_a_file_is_refused_before_any_run_exists(tmp_path, capsys):
    # Regression (issue 21): the run was created SCHEDULED, then the export crashed on the file with a traceback,
    # and the orphaned run kept the cell busy for every study.
    import yaml

    from studykit.cli.commands import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = tmp_path / "run.yaml"
    params.write_text(yaml.safe_dump(BASE | {"tracking": {"checkpoint_dir": str(tmp_path / "ckpt")}}))
    (tmp_path / "taken").write_text("not a folder")
    assert main(["export", "verl", str(params), "--out", str(tmp_path / "taken"), "--uri", uri]) == 2
    assert "taken: exists and is not a folder" in capsys.readouterr().err
    assert _active_runs(uri) == []


def test_exporting_twice_to_one_folder_keeps_one_run(tmp_path):
    # Regression (issue 21): each export made another SCHEDULED run of the cell.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = cfg_of(tracking={"checkpoint_dir": str(tmp_path / "ckpt")})
    first = export(cfg, tmp_path / "job", uri=uri).run_id
    assert export(cfg, tmp_path / "job", uri=uri).run_id == first
    assert [r.info.run_id for r in _active_runs(uri)] == [first]
    other = cfg_of(train={"seed": 9}, tracking={"checkpoint_dir": str(tmp_path / "ckpt")})
    second = export(other, tmp_path / "job", uri=uri).run_id  # another config replaces the unstarted run
    assert [r.info.run_id for r in _active_runs(uri)] == [second] != [first]
    tracking.client(uri).update_run(second, status="RUNNING")  # verl started it: a new export leaves it alone
    third = export(other, tmp_path / "job", uri=uri).run_id
    assert sorted(r.info.run_id for r in _active_runs(uri)) == sorted([second, third])
    export(other, tmp_path / "job", uri=uri, create_run=False)  # --no-run: nothing will launch `third` any more
    assert [r.info.run_id for r in _active_runs(uri)] == [second]


def test_a_write_that_fails_after_the_run_was_created_leaves_no_run(tmp_path, monkeypatch):
    import errno

    from studykit.integrations import verl_export

    def full(records, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(verl_export, "write_parquet", full)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(OSError):
        export(cfg_of(tracking={"checkpoint_dir": str(tmp_path / "ckpt")}), tmp_path / "job", uri=uri)
    assert _active_runs(uri) == []


def test_import_refuses_a_run_it_does_not_own_and_an_unknown_one(tmp_path, capsys):
    # Regression (issue 21): an unknown id gave a raw traceback; another run of the config was ended FINISHED with
    # no metrics and the study counted it done.
    from studykit.cli.commands import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = cfg_of(tracking={"checkpoint_dir": str(tmp_path / "ckpt")})
    job = export(cfg, tmp_path / "job", uri=uri)
    mlc = tracking.client(uri)
    stranger = mlc.create_run(mlc.get_run(job.run_id).info.experiment_id,
                              tags={"config_hash": cfg.config_hash()}).info.run_id
    assert main(["import", "verl", stranger, "--dir", str(job.out_dir), "--status", "FINISHED"]) == 2
    assert f"run {stranger} is not the run of this export" in capsys.readouterr().err
    assert mlc.get_run(stranger).info.status == "RUNNING" and "verl_imported" not in mlc.get_run(stranger).data.tags
    assert main(["import", "verl", "0" * 32, "--dir", str(job.out_dir)]) == 2
    assert "is not the run of this export" in capsys.readouterr().err
    empty = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["import", "verl", job.run_id, "--dir", str(job.out_dir), "--uri", empty]) == 2
    assert f"run {job.run_id} is not in the tracking store {empty}" in capsys.readouterr().err
    assert main(["import", "verl", job.run_id, "--dir", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_a_run_with_nothing_imported_does_not_end_finished(tmp_path, capsys):
    from studykit.study import claims
    from studykit.cli.commands import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = cfg_of(tracking={"checkpoint_dir": str(tmp_path / "ckpt")})
    job = export(cfg, tmp_path / "job", uri=uri)
    assert main(["import", "verl", job.run_id, "--dir", str(job.out_dir), "--status", "FINISHED"]) == 1
    assert "run ended FAILED: verl import found no validation metrics" in capsys.readouterr().err
    run = tracking.client(uri).get_run(job.run_id)
    assert run.info.status == "FAILED" and "no validation metrics" in run.data.tags["status_reason"]
    assert claims.finished_run(cfg, uri) is None  # the study does not count the cell done
