"""Benchmark: HF sampler throughput vs raw `model.generate` on the same batch (tiny Llama, CPU).

Both sample at temperature 1 from the same seed, so they draw the same tokens; the difference is the sampler's
overhead (per-step log-softmax + gather for the log-probs, left padding, eos stripping, decoding).
Run: OMP_NUM_THREADS=1 .venv/bin/python bench/sampler_speed.py [--prompts 16 --n 8 --max-new-tokens 32 --repeats 3]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from studykit.policy.sampling.hf import HFSampler
from studykit.toy.tokenizer import build_tokenizer


def tiny_policy(hidden: int, layers: int, heads: int) -> SimpleNamespace:
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return SimpleNamespace(model=LlamaForCausalLM(cfg).eval(), tokenizer=tok, finetune="full")


def raw_generate(policy, prompts: list[str], n: int, max_new_tokens: int, seed: int) -> int:
    """Generated tokens (through the first eos) from one plain `model.generate` call."""
    tok = policy.tokenizer
    batch = tok([p for p in prompts for _ in range(n)], return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = policy.model.generate(**batch, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                                    max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
    new = out[:, batch["input_ids"].shape[1]:]
    return sum(_through_eos(row, tok.eos_token_id) for row in new.tolist())


def _through_eos(row: list[int], eos: int) -> int:
    return row.index(eos) + 1 if eos in row else len(row)


def best_of(repeats: int, fn) -> tuple[float, int]:
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = fn()
        best = min(best, time.perf_counter() - start)
    return best, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    policy = tiny_policy(args.hidden, args.layers, args.heads)
    prompts = [f"Q {i % 10} {(3 * i) % 10} {(7 * i) % 10} =" for i in range(args.prompts)]
    rows = args.prompts * args.n
    sampler = HFSampler(policy, max_batch=rows)  # one generate call, like the raw baseline

    def sampled() -> int:
        groups = sampler.generate(prompts, n=args.n, max_new_tokens=args.max_new_tokens, seed=0)
        return sum(len(ids) for g in groups for ids in g.token_ids)

    raw_s, raw_tokens = best_of(args.repeats, lambda: raw_generate(policy, prompts, args.n, args.max_new_tokens, 0))
    hf_s, hf_tokens = best_of(args.repeats, sampled)
    print(f"batch: {args.prompts} prompts x n={args.n} = {rows} rows, max_new_tokens={args.max_new_tokens}, "
          f"model hidden={args.hidden} layers={args.layers} heads={args.heads}, best of {args.repeats}")
    print(f"raw model.generate: {raw_tokens} tokens in {raw_s:.3f} s = {raw_tokens / raw_s:.0f} tokens/s")
    print(f"HFSampler.generate: {hf_tokens} tokens in {hf_s:.3f} s = {hf_tokens / hf_s:.0f} tokens/s")
    print(f"ratio sampler/raw throughput: {(hf_tokens / hf_s) / (raw_tokens / raw_s):.3f}"
          f"{'' if hf_tokens == raw_tokens else '  (token counts differ: different draws)'}")


if __name__ == "__main__":
    main()
