"""Peak memory of one GRPO update on CPU against micro-batch size, response length and mini-batch size, beside the
planner's estimate (studykit.planning.plan).

    .venv/bin/python bench/memory.py [--layers 4 --hidden 512]

The model is Qwen2.5's shape scaled down: its real 152,064-token vocabulary, GQA (8 heads, 2 KV heads), SiLU MLP,
untied lm_head, a few layers and a small hidden size, randomly initialised in fp32, with LoRA r=16 on all linears
(studykit.policy.models' own wrapping), gradient checkpointing on unless a row says off. The `precision` column: `fp32`
(LoRA over an fp32 base), `bf16` (LoRA over a bf16 base: bf16 activations, fp32 adapter inputs) and `qlora` (an
NF4 base with bf16 compute, prepared by peft: an fp32 residual stream and fp32 logits); bf16 and qlora models are
saved once and loaded through `studykit.policy.models.load_policy`, as a run loads them. Each setting runs in its own process
and measures one call of `studykit.engine.update.update` (one mini-batch = one optimiser step, so every micro-batch is a
training forward/backward) on synthetic rollouts with one padded row per micro-batch, as real batches have.

Why peak RSS, and how: torch's CPU tensors come from malloc, which tracemalloc does not see; the kernel's own
high-water mark (VmHWM in /proc/self/status) does. It is reset just before the update by writing 5 to
/proc/self/clear_refs, and MALLOC_MMAP_THRESHOLD_=65536 makes every large buffer its own mapping, returned to the
kernel when freed, so the RSS before the update holds only live memory and the growth is the update's own peak
(activations, logits, log-softmax chunks, LoRA gradients, AdamW's moments allocated at the first step).
Prints a markdown table and a summary: growth with the micro-batch, spread across mini-batch sizes, and whether
every estimate is within 25% of what was measured. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "TOKENIZERS_PARALLELISM": "false"}
RANK = 16
# (micro-batch, mini-batch, prompt tokens, response tokens, gradient checkpointing, precision)
SETTINGS = [
    (1, 4, 64, 64, True, "fp32"), (2, 4, 64, 64, True, "fp32"), (4, 4, 64, 64, True, "fp32"),  # micro-batch sweep
    (2, 2, 64, 32, True, "fp32"), (2, 2, 64, 64, True, "fp32"), (2, 2, 64, 128, True, "fp32"),  # response length
    (2, 8, 64, 64, True, "fp32"),                                              # mini-batch sweep: 2, 4 (above), 8
    (2, 2, 1024, 16, True, "fp32"), (2, 2, 1024, 16, False, "fp32"),  # long prompts, short responses: the layers'
    # activations dominate, with and without checkpointing; then the same at the other precisions (issue 20)
    (2, 2, 1024, 16, True, "bf16"), (2, 2, 1024, 16, False, "bf16"),
    (2, 2, 1024, 16, True, "qlora"), (2, 2, 1024, 16, False, "qlora"), (2, 2, 64, 64, True, "qlora"),
]
PRECISIONS = {"fp32": ("lora", "float32", 4), "bf16": ("lora", "bfloat16", 2), "qlora": ("qlora", "bfloat16", 2)}


def qwen_small(layers: int, hidden: int):
    from transformers import Qwen2Config

    heads = hidden // 64
    return Qwen2Config(vocab_size=152064, hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=max(1, heads // 4), tie_word_embeddings=False,
                       rope_theta=1e6, rms_norm_eps=1e-6, max_position_embeddings=4096)


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rollouts(n: int, prompt: int, response: int, micro: int, vocab: int, seed: int = 0):
    import numpy as np

    from studykit.engine.rollout import Rollouts
    from studykit.tasks import Problem

    rng = np.random.default_rng(seed)
    out = Rollouts()
    for i in range(n):
        length = response - 1 if i % micro == 0 else response  # one padded row per micro-batch
        out.problems.append(Problem(f"p{i // 2}", "x", "0", {}))
        out.prompt_ids.append(rng.integers(1, vocab, prompt).tolist())
        out.token_ids.append(rng.integers(1, vocab, length).tolist())
        out.sampler_logprobs.append((-rng.random(length) * 3).tolist())
        out.advantages.append(float(rng.normal()))
    return out


def child(a: dict) -> dict:
    import gc
    import types

    import torch
    from transformers import AutoModelForCausalLM

    from studykit.planning import arch as arch_mod, plan
    from studykit.config import schema as config
    from studykit.engine import update
    from studykit.policy.models import Policy, _add_lora

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg_hf = qwen_small(a["layers"], a["hidden"])
    finetune, dtype, b = PRECISIONS[a.get("precision", "fp32")]
    model = AutoModelForCausalLM.from_config(cfg_hf)
    if dtype == "float32":
        model = _add_lora(model, "lora", RANK, 2 * RANK, 0.0, "all-linear", a["ckpt"])
        policy = Policy(model=model, tokenizer=types.SimpleNamespace(pad_token_id=0), name="bench", finetune="lora",
                        base_path="", dtype="float32", gradient_checkpointing=a["ckpt"])
    else:
        policy = _saved_and_loaded(model, finetune, dtype, a["ckpt"])
    del model
    cfg = config.validate({"model": {"finetune": finetune, "dtype": dtype, "lora_rank": RANK,
                                     "gradient_checkpointing": a["ckpt"]},
                           "train": {"prompts_per_step": a["mini"] // 2, "group_size": 2, "mini_batches": 1,
                                     "micro_batch_size": a["micro"], "max_new_tokens": a["response"],
                                     "warmup_steps": 0}})
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-5)
    rolls = rollouts(a["mini"], a["prompt"], a["response"], a["micro"], cfg_hf.vocab_size)
    gc.collect()
    before = status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t0 = time.perf_counter()
    update.update(policy, opt, rolls, cfg, step=1)
    seconds = time.perf_counter() - t0
    grown = (status_kib("VmHWM") - before) * 1024
    arch = arch_mod.from_config(cfg_hf, "qwen-small")
    shape = plan.Shape(finetune=finetune, b=b, micro=a["micro"], minibatch=a["mini"], prompt=a["prompt"],
                       response=a["response"], chunk=cfg.train.logprob_chunk, checkpointing=a["ckpt"], rank=RANK,
                       targets="all-linear", sampler="hf")
    parts = {p.name: p.bytes for p in plan.parts_of(arch, shape, None)[1]}
    n_lora = arch_mod.lora_params(arch, RANK)
    head, layer = parts["logits"] + parts["log-softmax chunk"], parts["one layer's backward"]
    predicted = parts["activations"] + max(head, layer) + 12 * n_lora  # + gradients and AdamW moments (first step)
    return a | {"measured": grown, "predicted": predicted, "seconds": seconds,
                "activations": parts["activations"] + layer, "logits": head,
                "params_m": arch.n_params / 1e6}


def _saved_and_loaded(model, finetune: str, dtype: str, ckpt: bool):
    """The random model saved to a temporary folder and loaded as a run loads it (bf16 base or NF4 + peft prep)."""
    import tempfile
    import types

    from studykit.policy.models import DTYPES, Policy, _add_lora, _load_base

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        base = _load_base(folder, finetune, DTYPES[dtype], "cpu")  # the load path of studykit.policy.models (no tokenizer)
    lora = _add_lora(base, finetune, RANK, 2 * RANK, 0.0, "all-linear", ckpt)
    return Policy(model=lora, tokenizer=types.SimpleNamespace(pad_token_id=0), name="bench", finetune=finetune,
                  base_path="", dtype=dtype, gradient_checkpointing=ckpt)


def run_setting(a: dict) -> dict:
    env = os.environ | CHILD_ENV
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(a)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"setting {a} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--tolerance", type=float, default=0.25)
    ap.add_argument("--precision", choices=sorted(PRECISIONS), action="append",
                    help="run only the rows of this precision (repeatable; default: every row)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    MB = 2 ** 20
    rows, start = [], time.perf_counter()
    print("| precision | micro | mini | prompt | response | ckpt | measured MB | predicted MB | pred/meas | activations+layer MB | logits+chunk MB | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for micro, mini, prompt, response, ckpt, precision in SETTINGS:
        if args.precision and precision not in args.precision:
            continue
        r = run_setting(dict(micro=micro, mini=mini, response=response, ckpt=ckpt, layers=args.layers,
                             hidden=args.hidden, prompt=prompt, precision=precision))
        rows.append(r)
        print(f"| {precision} | {micro} | {mini} | {prompt} | {response} | {'on' if ckpt else 'off'} | {r['measured'] / MB:.0f} | "
              f"{r['predicted'] / MB:.0f} | {r['predicted'] / r['measured']:.2f} | {r['activations'] / MB:.0f} | "
              f"{r['logits'] / MB:.0f} | {r['seconds']:.1f} |", flush=True)
    pick = {(r["micro"], r["mini"], r["prompt"], r["response"], r["ckpt"]): r["measured"] for r in rows
            if r["precision"] == "fp32"}
    ratios = [r["predicted"] / r["measured"] for r in rows]
    within = all(abs(x - 1) <= args.tolerance for x in ratios)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; model: Qwen2.5 shape, vocab 152064, {args.layers} layers, hidden {args.hidden}, "
          f"{rows[0]['params_m']:.0f}M params, LoRA r={RANK}")
    if all((m, 4, 64, 64, True) in pick for m in (1, 2, 4)):
        micro_growth = [pick[(m, 4, 64, 64, True)] / MB for m in (1, 2, 4)]
        flat = [pick[(2, m, 64, 64, True)] / MB for m in (2, 4, 8)]
        print(f"peak growth vs micro-batch 1/2/4: {' / '.join(f'{x:.0f}' for x in micro_growth)} MB "
              f"({'grows' if micro_growth[0] < micro_growth[1] < micro_growth[2] else 'DOES NOT GROW'})")
        print(f"peak growth vs mini-batch 2/4/8 at micro-batch 2: {' / '.join(f'{x:.0f}' for x in flat)} MB "
              f"(spread {100 * (max(flat) - min(flat)) / max(flat):.0f}%)")
    print(f"planner within {args.tolerance:.0%} of measured on every row: {within} "
          f"(pred/meas {min(ratios):.2f} .. {max(ratios):.2f})")
    return 0 if within else 1  # the planner's 25% promise is what this bench checks


if __name__ == "__main__":
    sys.exit(main())
