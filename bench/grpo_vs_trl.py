"""Benchmark: studykit's GRPO trainer vs TRL's GRPOTrainer on the same tiny toy model, data and reward (CPU).

Both trainers run in their own subprocess (one torch thread each, OMP_NUM_THREADS=1) with matched settings:

* model: `toy:custom` with the learner knobs of tests/conftest.py (full fine-tuning, float32);
* data: the toy task's training pool; reward: studykit's `ground_truth` (format-gated), wrapped for TRL;
* G=8 samples per prompt, 16 prompts per generation batch, 2 optimiser updates per generation batch, 20 batches;
* lr 3e-4 constant (AdamW, no weight decay, grad clip 1.0), T=1.0, top_p 1, no top-k, 16 new tokens, no KL,
  clip 0.2 / 0.28, token-mean loss over each mini-batch, old log-probs recomputed by the training model.

How "2 updates per generation batch" maps to TRL: `per_device_train_batch_size=64` (completions = 8 prompts),
`gradient_accumulation_steps=1`, `steps_per_generation=2`, so one generation batch is 64 x 2 = 128 completions
= 16 prompts x 8, and TRL takes 2 optimiser steps on its two halves before generating again (`num_iterations=1`).
TRL counts optimiser steps, so 20 studykit steps = `max_steps=40` in TRL. Because generation and optimiser steps
are misaligned, TRL recomputes old log-probs with a forward pass, as studykit does (`algo.old_logprobs=recompute`).
`loss_type="bnpo"` normalises by the active tokens of each mini-batch: exactly studykit's `token-mean`.

Departures from studykit's defaults, for equal work per step: `algo.dynamic_sampling=False` (TRL has no
DAPO refill, so both train on all 16 groups of every batch); studykit evaluates only at step 0 and at the end.

Timing (the CPUs are shared, so medians, and the fastest of `--repeats` alternating runs per trainer):
studykit s/step = median over steps of the logged `time/sample_s + time/update_s` (eval excluded); its
`wall_s_per_step` is the median spacing of the per-step MLflow metric timestamps (includes logging). TRL s/step =
median wall time per generation batch (its two optimiser steps included), from callback timestamps.
"train s" is the `train()` call without studykit's two evals; "total s" is the whole subprocess (imports, model
load, MLflow setup, final eval). Final accuracy is measured the same way for both: `studykit.engine.evaluation.
evaluate_set` with the HF sampler on 128 held-out toy problems x 8 samples at T=1 and the seed the trainer uses
for its final eval (common random numbers: nearly equal models can score exactly the same), TRL's model saved
and reloaded with `load_policy`. At the end it runs bench/sampler_speed.py (HF sampler vs raw `model.generate`).
`--studykit-override JSON` deep-merges into the studykit config to try a setting (e.g. the sampler's max_batch).

Run: OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_vs_trl.py [--steps 20] [--no-sampler-speed]
Needs TRL (the `bench` extra): uv pip install --python .venv/bin/python "trl" "transformers==5.19.0"
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from statistics import median

# Keep in step with tests/conftest.py LEARNER_KNOBS (the learnable toy model).
LEARNER_KNOBS = {"steps": 400, "batch_size": 64, "sum_share": 0.25, "count_share": 0.5, "max_share": 0.25,
                 "warmup_steps": 40, "broken_format_rate": 0.05}
HERE = Path(__file__).resolve().parent
EVAL_SEED_BASE = 10_007  # studykit.engine.trainer._evaluate seeds its eval with 10_007 + step


def _settings(args) -> dict:
    return {"steps": args.steps, "prompts": args.prompts, "group": args.group, "updates": args.updates, "lr": args.lr,
            "max_new": args.max_new_tokens, "eval_problems": args.eval_problems, "eval_n": args.eval_n,
            "seed": args.seed, "studykit_override": _override(args.studykit_override), "toy_knobs": _knobs(args)}


def _knobs(args) -> dict:
    """The learnable toy model; `--tiny` pretrains it for 20 steps only (a smoke run of the bench, not a figure)."""
    return dict(LEARNER_KNOBS, steps=20, warmup_steps=2) if args.tiny else dict(LEARNER_KNOBS)


def _override(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise SystemExit(f"--studykit-override: not valid JSON ({err}); expected e.g. '{{\"train\": {{...}}}}'")
    if not isinstance(value, dict):
        raise SystemExit(f"--studykit-override: expected a JSON object of config sections, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- studykit worker


def studykit_config(s: dict, tmp: Path):
    from studykit.config.schema import deep_merge, validate

    return validate(deep_merge({
        "study": "bench_grpo_vs_trl", "claim": "ground_truth",
        "model": {"name": "toy:custom", "toy": s["toy_knobs"], "finetune": "full"},
        "algo": {"estimator": "grpo", "clip_low": 0.2, "clip_high": 0.28, "agg": "token-mean", "kl_coef": 0.0,
                 "dynamic_sampling": False, "old_logprobs": "recompute"},
        "train": {"steps": s["steps"], "prompts_per_step": s["prompts"], "group_size": s["group"],
                  "mini_batches": s["updates"], "lr": s["lr"], "warmup_steps": 0, "weight_decay": 0.0, "max_new_tokens": s["max_new"], "temperature": 1.0,
                  "top_p": 1.0, "threads": 1, "seed": s["seed"], "grad_clip": 1.0},
        "eval": {"every": 0, "n_samples": s["eval_n"], "ks": [1, s["eval_n"]], "temperature": 1.0,
                 "sets": [{"task": "toy", "limit": s["eval_problems"]}]},
        "tracking": {"uri": f"sqlite:///{tmp}/mlflow.db", "checkpoint_dir": str(tmp / "ckpt"), "resume": False,
                     "sample_tables": 0},
    }, s["studykit_override"]), source="bench/grpo_vs_trl.py")


def run_studykit(s: dict) -> dict:
    import mlflow

    from studykit.engine import trainer

    with tempfile.TemporaryDirectory(prefix="bench_sk_") as d:
        cfg = studykit_config(s, Path(d))
        t0 = time.perf_counter()
        result = trainer.train(cfg, progress=False)
        wall = time.perf_counter() - t0
        client = mlflow.MlflowClient(tracking_uri=cfg.tracking.uri)
        hist = {k: sorted(client.get_metric_history(result.run_id, k), key=lambda m: m.step)
                for k in ("time/sample_s", "time/update_s", "time/eval_s", "eval/toy/pass_at_1",
                          "train/reward_mean")}
    if result.status != "FINISHED":
        raise RuntimeError(f"studykit run ended {result.status}")
    per_step = [a.value + b.value for a, b in zip(hist["time/sample_s"], hist["time/update_s"])]
    stamps = [m.timestamp / 1000 for m in hist["train/reward_mean"]]
    eval_s = sum(m.value for m in hist["time/eval_s"])
    pass1 = {m.step: m.value for m in hist["eval/toy/pass_at_1"]}
    return {"trainer": "studykit", "s_per_step": median(per_step), "mean_s_per_step": sum(per_step) / len(per_step),
            "sample_s": median([m.value for m in hist["time/sample_s"]]),
            "update_s": median([m.value for m in hist["time/update_s"]]),
            "wall_s_per_step": median([b - a for a, b in pairwise(stamps)]) if len(stamps) > 1 else None,
            "train_wall_s": wall - eval_s, "eval_in_train_s": eval_s,
            "base_pass1": pass1.get(0), "final_pass1": pass1.get(s["steps"])}


# ---------------------------------------------------------------- TRL worker


def make_trl_reward(problems_by_id: dict, reward_fn):
    """A TRL reward function over studykit's group-level reward: completions of one prompt are scored together.

    TRL calls `f(prompts=..., completions=..., completion_ids=..., **dataset_columns, trainer_state=..., ...)`
    and wants one float per completion; the dataset's `pid` column names the studykit Problem.
    """

    def studykit_ground_truth(prompts, completions, pid, **_kwargs) -> list[float]:
        if len(completions) != len(pid):
            raise ValueError(f"reward: got {len(completions)} completions but {len(pid)} pid values")
        rewards = [0.0] * len(completions)
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(pid):
            groups.setdefault(key, []).append(i)
        for key, idx in groups.items():
            if key not in problems_by_id:
                raise KeyError(f"reward: dataset column 'pid' value {key!r} is not a training problem id")
            res = reward_fn([completions[i] for i in idx], problems_by_id[key])
            for i, r in zip(idx, res.rewards.tolist()):
                rewards[i] = float(r)
        return rewards

    return studykit_ground_truth


def trl_config(s: dict, out_dir: str):
    from trl import GRPOConfig

    mini = s["prompts"] * s["group"] // s["updates"]
    return GRPOConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, seed=s["seed"],
        num_generations=s["group"], per_device_train_batch_size=mini, gradient_accumulation_steps=1,
        steps_per_generation=s["updates"], num_iterations=1, max_steps=s["steps"] * s["updates"],
        learning_rate=s["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        max_completion_length=s["max_new"], temperature=1.0, top_p=1.0, top_k=0,
        beta=0.0, epsilon=0.2, epsilon_high=0.28, loss_type="bnpo", scale_rewards="group",
        eval_strategy="no", save_strategy="no", report_to=[], logging_steps=10, disable_tqdm=True,
        log_completions=False, dataloader_num_workers=0, remove_unused_columns=False,
    )


def run_trl(s: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from studykit.scoring import rewards
    from studykit.policy.models import load_policy
    from studykit.tasks import get as get_task
    from studykit.tasks.templates import render

    torch.set_num_threads(1)
    torch.manual_seed(s["seed"])
    t_start = time.perf_counter()
    policy = load_policy("toy:custom", toy_knobs=s["toy_knobs"])
    pool = get_task("toy").load("train")
    data = Dataset.from_list([{"prompt": render(p, "raw"), "pid": p.id} for p in pool])
    reward = make_trl_reward({p.id: p for p in pool}, rewards.get("ground_truth", format_gate=True))
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="bench_trl_") as d:
        trainer = GRPOTrainer(model=policy.model, reward_funcs=[reward], args=trl_config(s, d), train_dataset=data,
                              processing_class=policy.tokenizer, callbacks=[Clock()])
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        trainer.train()
        train_wall = time.perf_counter() - t0
        trainer.save_model(f"{d}/final")
        policy.tokenizer.save_pretrained(f"{d}/final")
        final = evaluate_folder(f"{d}/final", s)
    batch_ends = stamps[:: s["updates"]]  # train begin, then the end of every generation batch's last update
    per_batch = [b - a for a, b in pairwise(batch_ends)]
    return {"trainer": f"trl {_version('trl')}", "s_per_step": median(per_batch),
            "mean_s_per_step": sum(per_batch) / len(per_batch), "train_wall_s": train_wall, "final_pass1": final,
            "setup_s": t0 - t_start}


def evaluate_folder(folder: str, s: dict) -> float:
    """pass@1 of a saved model on the held-out toy pool, exactly as studykit's trainer evaluates at the end."""
    from studykit.engine.evaluation import evaluate_set
    from studykit.policy.models import load_policy
    from studykit.policy.sampling import make_sampler
    from studykit.tasks import get as get_task

    policy = load_policy(folder)
    task = get_task("toy")
    problems = task.load("test")[: s["eval_problems"]]
    res = evaluate_set(make_sampler("hf", policy), problems, "toy", task=task, template="raw", tokenizer=policy.tokenizer,
                       n=s["eval_n"], ks=[1], temperature=1.0, max_new_tokens=s["max_new"],
                       seed=EVAL_SEED_BASE + s["steps"])
    return res.metrics["eval/toy/pass_at_1"]


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)


# ---------------------------------------------------------------- driver


def _spawn(which: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", which, "--result", out,
           *[f"--{k}={v}" if v != "" else f"--{k}" for k, v in _cli_settings(args).items()]]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, cwd=HERE.parent, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{which} worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(Path(out).read_text())
    Path(out).unlink()
    result["process_wall_s"] = wall
    return result


def _cli_settings(args) -> dict:
    return {"steps": args.steps, "prompts": args.prompts, "group": args.group, "updates": args.updates,
            "lr": args.lr, "max-new-tokens": args.max_new_tokens, "eval-problems": args.eval_problems,
            "eval-n": args.eval_n, "seed": args.seed, "studykit-override": args.studykit_override or "{}",
            **({"tiny": ""} if args.tiny else {})}


def table(results: list[dict]) -> str:
    lines = ["| trainer | s/step (median) | train s (excl. eval) | total s (process) | final pass@1 |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['trainer']} | {r['s_per_step']:.3f} | {r['train_wall_s']:.1f} | "
                     f"{r['process_wall_s']:.1f} | {r['final_pass1']:.4f} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="generation batches (studykit steps)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--updates", type=int, default=2, help="optimiser updates per generation batch")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--eval-problems", type=int, default=128)
    ap.add_argument("--eval-n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--studykit-override", default="", help='JSON merged into the studykit config, e.g. '
                    '\'{"train": {"sampler_options": {"max_batch": 128}}}\'')
    ap.add_argument("--repeats", type=int, default=2, help="runs per trainer (alternating); the fastest is reported")
    ap.add_argument("--only", choices=("studykit", "trl"), help="run one trainer only")
    ap.add_argument("--no-sampler-speed", action="store_true", help="skip bench/sampler_speed.py at the end")
    ap.add_argument("--tiny", action="store_true", help="a smoke run in about a minute: a 20-step toy model, two "
                    "steps of 2 prompts x 2, one repeat, no sampler bench (checks the bench still runs; its numbers mean nothing)")
    ap.add_argument("--worker", choices=("studykit", "trl"), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    return ap


def main() -> None:
    args = _parser().parse_args()
    if args.tiny:
        args.steps, args.prompts, args.group, args.updates, args.repeats = 2, 2, 2, 1, 1
        args.eval_problems, args.eval_n, args.max_new_tokens, args.no_sampler_speed = 4, 1, 4, True
    if (args.prompts * args.group) % args.updates:
        raise SystemExit(f"--updates={args.updates} must divide prompts x group = {args.prompts * args.group}")
    s = _settings(args)
    if args.worker:
        result = run_studykit(s) if args.worker == "studykit" else run_trl(s)
        Path(args.result).write_text(json.dumps(result))
        return
    from importlib.util import find_spec

    from studykit.toy import ensure_built

    if args.only != "studykit" and find_spec("trl") is None:
        raise SystemExit("TRL is not installed: uv pip install --python .venv/bin/python \"trl\" \"transformers==5.19.0\" "
                         "(or run with --only studykit)")
    ensure_built("custom", progress=False, **s["toy_knobs"])  # build once, outside the timed workers
    print(f"settings: {json.dumps(s)}  (one thread per trainer, CPU)", flush=True)
    which = [w for w in ("studykit", "trl") if args.only in (None, w)]
    runs: dict[str, list[dict]] = {w: [] for w in which}
    for _ in range(args.repeats):
        for w in which:
            runs[w].append(_spawn(w, args))
    results = [min(runs[w], key=lambda r: r["s_per_step"]) for w in which]
    for w in which:
        print(f"{w}: s/step of each run {[round(r['s_per_step'], 3) for r in runs[w]]}")
    print(table(results))
    for r in results:
        extra = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
                 if k not in ("trainer", "s_per_step", "train_wall_s", "process_wall_s", "final_pass1")}
        print(f"{r['trainer']}: {json.dumps(extra)}")
    if not args.no_sampler_speed:
        print("\nHF sampler vs raw generate (bench/sampler_speed.py):", flush=True)
        subprocess.run([sys.executable, str(HERE / "sampler_speed.py")], check=True, cwd=HERE.parent,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if len(results) == 2:
        print(f"ratio_trl_over_studykit={results[1]['s_per_step'] / results[0]['s_per_step']:.2f}")


if __name__ == "__main__":
    main()
