"""How close the toy study's arithmetic runs to this CPU's speed, on one thread (as each study worker runs):

    .venv/bin/python bench/toy_compute.py [--model strong] [--repeats 20]

Prints, for the toy model `--model` (built into the toy cache first if missing):
  * MKL's bare fp32 matmuls at the toy's shapes (3,584 token rows x hidden 128 / MLP 256): GFLOP/s;
  * one forward pass of a 128 x 28-token batch (the size of one GRPO step's rollouts): ms and GFLOP/s by a count of
    its matmuls (2 x non-embedding parameters per token; attention's own products left out, so this undercounts);
  * one decode step of 128 rows with a KV cache, and the HF sampler on a training-shaped call (16 prompts x 8 samples,
    16 new tokens) and an evaluation-shaped call (128 prompts x 16) at `max_batch` 128 and 2,048;
  * one GRPO update (`studykit.engine.update.update`) of one step's rollouts with the toy params (2 mini-batches).
What the study's time is made of, not a pass/fail check; the study's own breakdown is `bench/study_time.py`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("STUDYKIT_SKIP_PLAN", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from studykit.config import schema as config  # noqa: E402
from studykit.scoring import rewards
from studykit.engine import selection, update
from studykit.policy.models import from_config  # noqa: E402
from studykit.engine.rollout import collect  # noqa: E402
from studykit.policy.sampling.hf import HFSampler  # noqa: E402
from studykit.tasks import get as get_task  # noqa: E402
from studykit.tasks.templates import render  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeats: int, warm: int = 2) -> float:
    """Median seconds of `fn()` over `repeats` calls after `warm` unmeasured ones."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="strong", help="toy preset (default strong)")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    r = args.repeats

    for m, k, n in [(3584, 128, 128), (3584, 128, 256), (3584, 256, 128)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        s = timed(lambda: a @ b, r * 3)
        print(f"matmul {m}x{k} @ {k}x{n}: {s * 1e3:6.2f} ms, {2 * m * k * n / s / 1e9:5.1f} GFLOP/s")

    cfg = config.load(ROOT / "params/toy/base.yaml", {"model": {"name": f"toy:{args.model}"}})
    policy = from_config(cfg.model)
    model, tok = policy.model, policy.tokenizer
    body = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "lm_head" not in name)
    ids = torch.randint(5, 20, (128, 28))
    with torch.inference_mode():
        s = timed(lambda: model(input_ids=ids), r)
        print(f"forward 128 x 28 tokens: {s * 1e3:6.1f} ms, {2 * body * ids.numel() / s / 1e9:5.1f} GFLOP/s "
              f"(matmul count: 2 x {body:,} non-embedding parameters per token)")
        past = model(input_ids=ids[:, :12], use_cache=True).past_key_values

        def decode():
            model(input_ids=ids[:, :1], past_key_values=past, use_cache=True)
            past.crop(-1)  # drop the decoded token: every call decodes the same position
        print(f"decode step, 128 rows, KV cache of 12: {timed(decode, r) * 1e3:6.2f} ms")

    task = get_task("toy")
    prompts = [render(p, task.template, tok) for p in task.load("test")[:128]]
    for max_batch in (128, 2048):
        sampler = HFSampler(policy, max_batch=max_batch)
        train_s = timed(lambda: sampler.generate(prompts[:16], n=8, max_new_tokens=16, seed=0), max(r // 4, 3))
        eval_s = timed(lambda: sampler.generate(prompts, n=16, max_new_tokens=16, seed=0), 3, warm=1)
        print(f"HF sampler max_batch {max_batch:4d}: 16 prompts x 8 {train_s * 1e3:6.0f} ms, "
              f"128 prompts x 16 {eval_s * 1e3:6.0f} ms")

    sampler = HFSampler(policy, max_batch=128)
    opt = torch.optim.AdamW(list(policy.trainable_parameters()), lr=cfg.train.lr)
    reward = rewards.get("ground_truth", format_gate=True, verify=task.verify)
    data, rng = selection.EpochSampler(task.load("train"), 0), np.random.default_rng(0)
    rolls = collect(cfg, sampler, tok, reward, data.next, rng, seed=0, template=task.template, task=task)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def one_update():
        update.update(policy, opt, rolls, cfg, 1)
        model.load_state_dict(state)  # the same rollouts stay on-policy
    print(f"GRPO update of {len(rolls)} rollouts (2 mini-batches): {timed(one_update, max(r // 2, 3)) * 1e3:6.0f} ms")


if __name__ == "__main__":
    main()
