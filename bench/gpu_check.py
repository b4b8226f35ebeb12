"""One command for a CUDA machine: a randomly initialised model with Qwen2.5-7B's architecture in bf16, LoRA r=64 on
every linear, three GRPO steps at the paper grid's batch shape with the HF sampler, each phase's CUDA peak memory and
seconds printed beside studykit.planning.plan's prediction.

    .venv/bin/python bench/gpu_check.py                  # CUDA: Qwen2.5-7B shape, 32 prompts x 8, micro-batch 4
    .venv/bin/python bench/gpu_check.py --response 2048  # the paper params' full response length (slower)
    .venv/bin/python bench/gpu_check.py --tiny           # any machine: a scaled-down config, a few seconds on CPU

Needs torch, transformers and peft (vLLM and bitsandbytes are not used). No weights and no tokenizer are downloaded:
the architecture comes from studykit's shipped config, the weights are random (every completion runs to
--response tokens, the worst case for time and memory), and prompts are random token ids through a word-level
tokenizer over the model's whole vocabulary. Rewards are random (no verifier); the update is studykit.engine.update's.
Response length defaults to 512 so three steps fit in about 8 minutes on one H100-class GPU (estimated; not run
yet); the batch shape (prompts, group, mini-batches, micro-batch) is the paper params'.
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


def make_policy(config, device: str, dtype, rank: int):
    import torch
    from transformers import AutoModelForCausalLM

    from studykit.policy.models import Policy, _add_lora

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.pad_token_id, model.generation_config.pad_token_id = 0, 0
    model.generation_config.eos_token_id = 1
    model = _add_lora(model, "lora", rank, 2 * rank, 0.0, "all-linear", True)
    return Policy(model=model, tokenizer=tokenizer_over(config.vocab_size), name="random-init", finetune="lora",
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
    ap.add_argument("--prompts", type=int, help="prompts per step (default: paper params' 32; --tiny: 2)")
    ap.add_argument("--group", type=int, help="samples per prompt (default 8; --tiny: 2)")
    ap.add_argument("--prompt-tokens", type=int, help="prompt length (default 256; --tiny: 8)")
    ap.add_argument("--response", type=int, help="max new tokens (default 512; --tiny: 8)")
    ap.add_argument("--micro", type=int, default=4, help="train.micro_batch_size (paper params: 4)")
    ap.add_argument("--rank", type=int, default=64)
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from studykit.planning import arch as arch_mod, plan
    from studykit.config import schema as config_mod
    from studykit.engine import update
    from studykit.policy.sampling.hf import HFSampler

    tiny = args.tiny
    prompts, group = args.prompts or (2 if tiny else 32), args.group or (2 if tiny else 8)
    prompt_tokens, response = args.prompt_tokens or (8 if tiny else 256), args.response or (8 if tiny else 512)
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        sys.exit("gpu_check: no CUDA device; use --tiny to exercise the code path on CPU")
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    torch.manual_seed(0)
    hf_config = build_config(tiny)
    t0 = time.perf_counter()
    with Peak(cuda) as load:
        policy = make_policy(hf_config, device, dtype, args.rank)
    load_s = time.perf_counter() - t0
    cfg = config_mod.validate({
        "model": {"finetune": "lora", "dtype": "bfloat16" if cuda else "float32", "lora_rank": args.rank,
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
        texts = [" ".join(f"t{i}" for i in rng.integers(3, vocab, prompt_tokens)) for _ in range(prompts)]
        t1 = time.perf_counter()
        with Peak(cuda) as sp:
            groups = sampler.generate(texts, n=group, temperature=1.0, max_new_tokens=response, seed=step)
        t2 = time.perf_counter()
        rolls = rollouts_from(groups, rng)
        with Peak(cuda) as up:
            stats = update.update(policy, opt, rolls, cfg, step)
        t3 = time.perf_counter()
        row = {"step": step, "sample_s": t2 - t1, "update_s": t3 - t2, "sample_peak": sp.bytes, "update_peak": up.bytes,
               "tokens": sum(len(t) for t in rolls.token_ids), "loss": stats.get("train/loss")}
        rows.append(row)
        _print_row(row, predicted)
    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "params": arch.n_params, "load_s": load_s,
              "load_peak": load.bytes, "predicted": predicted, "steps": rows}
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

    print(f"step {row['step']}: sampling {row['sample_s']:.1f} s, peak {gib(row['sample_peak'])} "
          f"(planned {gib(predicted['sample'])}); update {row['update_s']:.1f} s, peak {gib(row['update_peak'])} "
          f"(planned {gib(predicted['update'])}); {row['tokens']} completion tokens; planned time: unmeasured",
          flush=True)


if __name__ == "__main__":
    main()
