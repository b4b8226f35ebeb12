"""The verl hand-off against verl 0.9.1's own code (run by bench/verl_handoff.sh inside the verl environment).

Usage: python bench/verl_handoff_check.py SCRATCH_DIR. Every step prints what it checked; any disagreement raises.
No GPU and no model: verl's trainer itself is not started (its rollout needs vLLM on CUDA). What runs is verl's
dataset class, custom-reward loader, Hydra config, advantage registry and compute_advantage, validation metric
naming and dump writer, and MLflow logger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import yaml

SCRATCH = Path(sys.argv[1]).resolve()
OUT = SCRATCH / "export"
PY = sys.executable
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{SCRATCH}/mlruns/mlflow.db"
(SCRATCH / "mlruns").mkdir(parents=True, exist_ok=True)

PARAMS = {
    "study": "verl_bench", "rq": "rq1", "claim": "ground_truth", "condition": "ground_truth",
    "model": {"name": "Qwen/Qwen2.5-7B", "finetune": "lora", "dtype": "bfloat16"},
    "data": {"task": "math500", "train_split": "test", "train_size": 16},
    "train": {"steps": 2, "prompts_per_step": 8, "group_size": 4, "mini_batches": 2, "max_new_tokens": 256},
    "eval": {"sets": [{"task": "math500", "limit": 4}, {"task": "logic:dyck", "limit": 4, "name": "dyck"}],
             "n_samples": 4, "ks": [1, 2, 4], "every": 2},
    "tracking": {"checkpoint_dir": str(SCRATCH / "ckpt")},
}


def sh(*args: str, env: dict | None = None) -> str:
    done = subprocess.run([PY, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode:
        raise SystemExit(f"FAILED: {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def export(params: dict, out: Path, name: str) -> dict:
    path = SCRATCH / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    print(sh("-m", "studykit.cli.commands", "export", "verl", str(path), "--out", str(out)).strip())
    return json.loads((out / "manifest.json").read_text())


def toy_tokenizer(texts: list[str]):
    """A byte-level BPE tokenizer trained on the prompts, with a minimal chat template (no hub access here)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    hf.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    return hf


step("1. studykit export verl (in the verl environment)")
manifest = export(PARAMS, OUT, "gt")

step("2. verl.utils.dataset.rl_dataset.RLHFDataset reads the parquet")
import pyarrow.parquet as pq  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402

records = {s: pq.read_table(OUT / f"{s}.parquet").to_pylist() for s in ("train", "val")}
tokenizer = toy_tokenizer([r["prompt"][0]["content"] for rs in records.values() for r in rs])
data_cfg = OmegaConf.create({"max_prompt_length": 4096, "filter_overlong_prompts": True,
                             "filter_overlong_prompts_workers": 1, "cache_dir": str(SCRATCH / "cache")})
datasets = {s: RLHFDataset([str(OUT / f"{s}.parquet")], tokenizer, data_cfg) for s in ("train", "val")}
for split, ds in datasets.items():
    item = ds[0]
    assert len(ds) == len(records[split]), (split, len(ds))
    print(f"{split}: {len(ds)} rows; item keys {sorted(item)}; data_source {item['data_source']!r}")
rendered = tokenizer.apply_chat_template(datasets["train"][0]["raw_prompt"], tokenize=False, add_generation_prompt=True)
print("train[0] rendered by the chat template:", repr(rendered[:160]), "...")

step("3. the reward through verl.trainer.ppo.reward.get_custom_reward_fn")
from verl.trainer.ppo.reward import get_custom_reward_fn  # noqa: E402

from studykit.scoring import rewards  # noqa: E402
from studykit.tasks import Problem, verifier  # noqa: E402

fn = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": {
    "path": "pkg://studykit.integrations.verl", "name": "compute_score", "reward_kwargs": {}}}}))


def completions(answer: str) -> list[str]:
    return [f"<think>work</think> <answer>{answer}</answer>", "<think>work</think> <answer>wrong 7</answer>",
            f"no tags, just \\boxed{{{answer}}}", "{" * 50_000 + "__import__('os').system('true')",
            "<answer>" + "9" * 200_000 + "</answer>"]


agree = total = 0
for split in ("train", "val"):
    ds = datasets[split]
    for i in range(len(ds)):
        item = ds[i]
        info = dict(item["extra_info"])
        problem = Problem(info["problem_id"], info["question"], item["reward_model"]["ground_truth"],
                          json.loads(info["meta"]))
        gate = info["reward"]["format_gate"]
        own = rewards.get("ground_truth", format_gate=gate, verify=verifier(problem.meta["task"]))
        for text in completions(problem.answer):
            got = fn(data_source=item["data_source"], solution_str=text,
                     ground_truth=item["reward_model"]["ground_truth"],
                     extra_info=info | {"num_turns": None, "rollout_reward_scores": {}})
            mine = own([text], problem)
            total += 1
            agree += (got["score"], got["acc"], got["format"]) == (mine.rewards[0], float(mine.correct[0]),
                                                                   float(mine.format_ok[0]))
print(f"verl-loaded compute_score agrees with studykit's reward on {agree}/{total} completions (hostile ones included)")
assert agree == total

step("4. the launch overrides composed by verl's Hydra config (ppo_trainer)")
import verl  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass  # noqa: E402

nsr_out = SCRATCH / "export_nsr"
nsr_params = json.loads(json.dumps(PARAMS)) | {"claim": "nsr", "condition": "nsr", "rq": "rq3"}
nsr_params["algo"] = {"estimator": "w_reinforce", "lam": 0.25}
nsr_manifest = export(nsr_params, nsr_out, "nsr")
config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
for name, man, out in (("ground_truth", manifest, OUT), ("w_reinforce", nsr_manifest, nsr_out)):
    paths = [f"data.train_files={out}/train.parquet", f"data.val_files={out}/val.parquet",
             f"trainer.validation_data_dir={out}/validation", "actor_rollout_ref.rollout.tensor_model_parallel_size=1"]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=[*man["overrides"], *paths])
    checked = 0
    for override in man["overrides"]:
        key, value = override.lstrip("+").split("=", 1)
        got = OmegaConf.select(composed, key)
        want = yaml.safe_load(value)
        assert str(got).lower() == str(want).lower() or got == want, (key, got, want)
        checked += 1
    algo = omega_conf_to_dataclass(composed.algorithm, AlgoConfig)
    print(f"{name}: {checked} overrides composed and read back; AlgoConfig(adv_estimator={algo.adv_estimator!r}, "
          f"filter_groups.enable={algo.filter_groups.enable}); actor clip {composed.actor_rollout_ref.actor.clip_ratio_low}"
          f"/{composed.actor_rollout_ref.actor.clip_ratio_high}, loss_agg_mode "
          f"{composed.actor_rollout_ref.actor.loss_agg_mode}; logger {list(composed.trainer.logger)}")

step("5. studykit's estimators through verl's registry and compute_advantage (VERL_USE_EXTERNAL_MODULES)")
print(sh("-c", """
import os, numpy as np, torch
from verl import DataProto
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.trainer.ppo.ray_trainer import compute_advantage
from studykit.engine.grpo import compute_advantages
names = sorted(k for k in ADV_ESTIMATOR_REGISTRY if k.startswith('studykit_'))
print('registered in verl:', names)
scores = torch.tensor([1., 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0])
uid = np.array(['a'] * 4 + ['b'] * 4 + ['c'] * 4, dtype=object)
rewards = torch.zeros(12, 5); rewards[:, 2] = scores
mask = torch.ones(12, 5); mask[:, 4] = 0
for est in ('nsr', 'psr', 'nsr_reinforce', 'psr_reinforce', 'w_reinforce'):
    data = DataProto.from_dict(tensors={'token_level_rewards': rewards.clone(), 'response_mask': mask.clone()},
                               non_tensors={'uid': uid})
    adv = compute_advantage(data, adv_estimator='studykit_' + est, config=AlgoConfig()).batch['advantages']
    want = compute_advantages(scores.view(3, 4), est, lam=float(os.environ['STUDYKIT_W_REINFORCE_LAM'])).view(12)
    assert torch.allclose(adv[:, 0], want) and torch.all(adv[:, 4] == 0), (est, adv[:, 0], want)
    print(f'{est}: verl compute_advantage == studykit.engine.grpo.compute_advantages', adv[:, 0].tolist())
""", env={"VERL_USE_EXTERNAL_MODULES": "studykit.integrations.verl_estimators",
          "STUDYKIT_W_REINFORCE_LAM": "0.25"}).strip())

step("6. verl's validation metric names, dump writer and MLflow logger on the pre-created run")
from verl.trainer.ppo.v1.trainer_base import PPOTrainer  # noqa: E402
from verl.utils.tracking import Tracking  # noqa: E402

run_id = manifest["run_id"]
os.environ.update(MLFLOW_RUN_ID=run_id, MLFLOW_EXPERIMENT_NAME=PARAMS["study"])
val = datasets["val"]
n = PARAMS["eval"]["n_samples"]


def validation(step_no: int) -> dict:
    """One fake validation: n completions per val problem (step 0 mostly wrong, later ones more right)."""
    outs, infos, sources, uids, inputs = [], {}, [], [], []
    rng = np.random.default_rng(step_no)
    for i in range(len(val)):
        item = val[i]
        uid = str(uuid.uuid4())
        gt = item["reward_model"]["ground_truth"]
        for j in range(n):
            right = rng.random() < (0.25 if step_no == 0 else 0.75)
            text = f"<think>t</think> <answer>{gt if right else 'nope'}</answer>"
            res = fn(data_source=item["data_source"], solution_str=text, ground_truth=gt,
                     extra_info=dict(item["extra_info"]))
            for k, v in {"reward": res["score"], **res}.items():
                infos.setdefault(k, []).append(v)
            outs.append(text)
            sources.append(item["data_source"])
            uids.append(uid)
            inputs.append(f"prompt {i}")
    metrics = PPOTrainer._val_metrics_update(None, sources, uids, infos, [])
    PPOTrainer._write_generations(inputs, outs, [None] * len(outs), infos["reward"], infos | {"uid": uids},
                                  str(OUT / "validation"), step_no)
    return metrics


tracker = Tracking(project_name=PARAMS["study"], experiment_name=manifest["run_name"],
                   default_backend=["console", "mlflow"], config=None)
val0 = validation(0)
tracker.log(data=val0, step=0)
tracker.log(data={"actor/pg_loss": 0.1, "critic/score/mean": 0.4}, step=1)
tracker.log(data=validation(2), step=2)
tracker.finish()
print("verl's validation metric names:", sorted(val0)[:6], f"... ({len(val0)} in all)")

step("7. studykit import verl (the launch script's epilogue) and what studykit's readers see")
print(sh("-m", "studykit.cli.commands", "import", "verl", run_id, "--dir", str(OUT), "--status", "FINISHED").strip())
from studykit.analysis import runs  # noqa: E402
from studykit.tracking import experiment as tracking

run = tracking.client().get_run(run_id)
m = run.data.metrics
print("status", run.info.status, "| tags:", {k: run.data.tags[k] for k in ("config_hash", "claim", "alignment",
                                                                          "engine", "verl_imported")})
print("studykit eval metrics:", {k: round(v, 4) for k, v in sorted(m.items()) if k.startswith("eval/")})
assert abs(m["eval/math500/avg_at_4"] - m["val-core/studykit/math500/math500/acc/mean_at_4"]) < 1e-9
counts = runs.load_counts(run_id, "math500")
print("eval_counts (the verdict table's input):", {s: c.correct.tolist() for s, c in counts.items()})
assert sorted(counts) == [0, 2]
print("\nverl hand-off check: all steps passed")
