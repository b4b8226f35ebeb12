"""One command for a CUDA machine, on the config others compare numbers with: a randomly initialised model with
Qwen2.5-7B's architecture, its decoder linears quantised to 4-bit NF4 (bitsandbytes, bf16 compute, double quantisation:
what `model.finetune: qlora` loads), LoRA r=16 on every linear through studykit.policy.models' own QLoRA preparation,
16 prompts x 8 samples, 512 new tokens, micro-batch 4, the HF sampler. Per step it prints rollout tokens/s, training
tokens/s, seconds per step and each phase's CUDA peak memory beside studykit.planning.plan's prediction, and stops starting
steps when the next one would pass `--budget-s` (480 s: the whole run stays within 8 minutes).

    .venv/bin/python bench/gpu_check.py                  # CUDA: the config above
    .venv/bin/python bench/gpu_check.py --base bf16      # the same with a bf16 base (LoRA, not QLoRA)
    .venv/bin/python bench/gpu_check.py --tiny           # any machine: a scaled-down config, seconds on CPU

Needs torch, transformers, peft and bitsandbytes (vLLM is not used). No weights and no tokenizer are downloaded:
the architecture comes from studykit's shipped config, the weights are random (every completion runs to
--response tokens, the worst case for time and memory), and prompts are random token ids through a word-level
tokenizer over the model's whole vocabulary. Rewards are random (no verifier); the update is studykit.engine.update's.
Not run on a GPU yet: the time per step is unmeasured (estimated 1-2 minutes on one H100-class GPU).
Training tokens/s counts prompt + completion tokens through the update's forward and backward passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def tokenizer_over(vocab: int):
    """A word-level tokenizer whose words t0..t{vocab-1} are the model's ids (0 = pad, 1 = eos)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"t{i}": i for i in range(vocab)}
    backend = Tokenizer(models.WordLevel(vocab=words, unk_token="t2"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="t0", eos_token="t1", unk_token="t2")
    tok.padding_side = "left"
    return tok


def build_config(tiny: bool):
    from studykit.planning import arch

    if tiny:
        from transformers import Qwen2Config

        return Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                           max_position_embeddings=4096)
    config, _ = arch.find_config("Qwen/Qwen2.5-7B")
    return config


def quantize_linears(model, device: str, compute_dtype) -> int:
    """Swap every decoder linear for a bitsandbytes NF4 Linear4bit holding the same (random) weights, as
    `from_pretrained(quantization_config=BitsAndBytesConfig(nf4, double quant))` would; returns how many."""
    import bitsandbytes as bnb
    import torch

    swapped = 0
    for parent in list(model.model.layers.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Linear:
                continue
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4").to(device)  # quantised on this move
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, q)
            swapped += 1
    model.is_loaded_in_4bit = True  # what peft's prepare_model_for_kbit_training reads
    from studykit.policy.models import _disable_cpu_weight_packing

    _disable_cpu_weight_packing(model)  # as studykit.policy.models does: one differentiable path on CPU (--tiny)
    return swapped


def make_policy(config, device: str, dtype, rank: int, finetune: str = "qlora"):
    import torch
    from transformers import AutoModelForCausalLM

    from studykit.policy.models import Policy, _add_lora

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.pad_token_id, model.generation_config.pad_token_id = 0, 0
    model.generation_config.eos_token_id = 1
    if finetune == "qlora":
        quantize_linears(model, device, dtype)
        if device == "cuda":
            torch.cuda.empty_cache()
    model = _add_lora(model, finetune, rank, 2 * rank, 0.0, "all-linear", True)
    return Policy(model=model, tokenizer=tokenizer_over(config.vocab_size), name="random-init", finetune=finetune,
                  base_path="", dtype="bfloat16" if dtype == torch.bfloat16 else "float32", gradient_checkpointing=True)


def rollouts_from(groups, rng):
    import torch

    from studykit.engine import grpo
    from studykit.engine.rollout import Rollouts
    from studykit.tasks import Problem

    rewards = torch.tensor(rng.integers(0, 2, (len(groups), len(groups[0].token_ids))), dtype=torch.float32)
    adv = grpo.compute_advantages(rewards, "grpo")
    out = Rollouts()
    for i, g in enumerate(groups):
        for j in range(len(g.token_ids)):
            out.problems.append(Problem(f"p{i}", g.prompt, "0", {}))
            out.prompt_ids.append(g.prompt_ids)
            out.token_ids.append(g.token_ids[j])
            out.sampler_logprobs.append(g.logprobs[j])
            out.advantages.append(float(adv[i, j]))
    return out


class Peak:
    """CUDA peak allocated memory of a block (None on CPU)."""

    def __init__(self, cuda: bool):
        self.cuda, self.bytes = cuda, None

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="scaled-down config (runs on CPU in seconds)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts", type=int, help="prompts per step (default 16; --tiny: 2)")
    ap.add_argument("--group", type=int, help="samples per prompt (default 8; --tiny: 2)")
    ap.add_argument("--prompt-tokens", type=int, help="prompt length (default 256; --tiny: 8)")
    ap.add_argument("--response", type=int, help="max new tokens (default 512; --tiny: 8)")
    ap.add_argument("--micro", type=int, default=4, help="train.micro_batch_size (paper params: 4)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--base", choices=("nf4", "bf16"), default="nf4",
                    help="nf4: QLoRA (4-bit base, the default); bf16: LoRA over a bf16 base (fp32 with --tiny on CPU)")
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="start no step that would end past this many seconds from the start (default 480)")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from studykit.planning import arch as arch_mod, plan
    from studykit.config import schema as config_mod
    from studykit.engine import update
    from studykit.policy.sampling.hf import HFSampler

    tiny = args.tiny
    prompts, group = args.prompts or (2 if tiny else 16), args.group or (2 if tiny else 8)
    finetune = "qlora" if args.base == "nf4" else "lora"
    prompt_tokens, response = args.prompt_tokens or (8 if tiny else 256), args.response or (8 if tiny else 512)
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        sys.exit("gpu_check: no CUDA device; use --tiny to exercise the code path on CPU")
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    torch.manual_seed(0)
    hf_config = build_config(tiny)
    t0 = time.perf_counter()
    with Peak(cuda) as load:
        policy = make_policy(hf_config, device, dtype, args.rank, finetune)
    load_s = time.perf_counter() - t0
    cfg = config_mod.validate({
        "model": {"finetune": finetune, "dtype": "bfloat16" if cuda else "float32", "lora_rank": args.rank,
                  "lora_alpha": 2 * args.rank, "gradient_checkpointing": True},
        "algo": {"dynamic_sampling": False},
        "train": {"prompts_per_step": prompts, "group_size": group, "mini_batches": 2, "micro_batch_size": args.micro,
                  "max_new_tokens": response, "lr": 1e-5, "warmup_steps": 0}})
    arch = arch_mod.from_config(hf_config, "Qwen2.5-7B shape (random init)" if not tiny else "tiny", "bench")
    shape = replace_shape(plan.shape_of(cfg, arch, prompt_tokens))
    total = torch.cuda.get_device_properties(0).total_memory if cuda else None
    sample_parts, update_parts, _ = plan.parts_of(arch, shape, total)
    predicted = {"sample": plan._peak(sample_parts) - plan.CUDA_OVERHEAD,
                 "update": plan._peak(update_parts) - plan.CUDA_OVERHEAD}
    sampler = HFSampler(policy, max_batch=128)
    opt = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    rng = np.random.default_rng(0)
    vocab = hf_config.vocab_size
    rows = []
    for step in range(1, args.steps + 1):
        if rows and time.perf_counter() - t0 + rows[-1]["step_s"] > args.budget_s:
            print(f"stopping before step {step}: it would end past --budget-s {args.budget_s:g}", flush=True)
            break
        texts = [" ".join(f"t{i}" for i in rng.integers(3, vocab, prompt_tokens)) for _ in range(prompts)]
        t1 = time.perf_counter()
        with Peak(cuda) as sp:
            groups = sampler.generate(texts, n=group, temperature=1.0, max_new_tokens=response, seed=step)
        t2 = time.perf_counter()
        rolls = rollouts_from(groups, rng)
        with Peak(cuda) as up:
            stats = update.update(policy, opt, rolls, cfg, step)
        t3 = time.perf_counter()
        tokens = sum(len(t) for t in rolls.token_ids)
        trained = tokens + sum(len(p) for p in rolls.prompt_ids)
        row = {"step": step, "sample_s": t2 - t1, "update_s": t3 - t2, "step_s": t3 - t1, "sample_peak": sp.bytes,
               "update_peak": up.bytes, "tokens": tokens, "rollout_tok_s": tokens / (t2 - t1),
               "train_tok_s": trained / (t3 - t2), "loss": stats.get("train/loss")}
        rows.append(row)
        _print_row(row, predicted)
    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "params": arch.n_params, "load_s": load_s,
              "load_peak": load.bytes, "predicted": predicted, "steps": rows, "base": args.base,
              "linear4bit": sum(type(m).__module__.startswith("bitsandbytes") and type(m).__name__ == "Linear4bit"
                                for m in policy.model.modules()),
              "config": {"prompts": prompts, "group": group, "prompt_tokens": prompt_tokens, "response": response,
                         "micro": args.micro, "rank": args.rank}, "wall_s": time.perf_counter() - t0}
    print(json.dumps(result))
    return result


def replace_shape(shape):
    """The bench samples with the HF sampler (the trainer's own model), whatever the paper params' sampler is."""
    from dataclasses import replace

    return replace(shape, sampler="hf", hf_max_batch=128)


def _print_row(row: dict, predicted: dict) -> None:
    def gib(x):
        if x is None:
            return "n/a (CPU)"
        return f"{x / 2 ** 30:.2f} GiB" if x >= 2 ** 30 else f"{x / 2 ** 20:.1f} MiB"

    print(f"step {row['step']}: {row['step_s']:.1f} s/step; sampling {row['sample_s']:.1f} s "
          f"({row['rollout_tok_s']:,.0f} rollout tokens/s), peak {gib(row['sample_peak'])} (planned "
          f"{gib(predicted['sample'])}); update {row['update_s']:.1f} s ({row['train_tok_s']:,.0f} training tokens/s), "
          f"peak {gib(row['update_peak'])} (planned {gib(predicted['update'])}); {row['tokens']} completion tokens",
          flush=True)


if __name__ == "__main__":
    main()
