"""The pre-flight plan of a GPU run: expected peak GPU memory by part, what the GPU has, and whether it fits.

`studykit plan PARAMS [--gpu-memory GiB]` prints it; `preflight(cfg)` runs the same check at the start of every
CUDA run, before weights load (studykit.engine.trainer, studykit.probes.alignment), and refuses a run that cannot fit, naming the
settings to change. On a machine without CUDA it is skipped with a log line.

Memory model (bytes; N = parameters, counted on the meta device by studykit.planning.arch; b = activation bytes: 2 for bf16,
4 for fp32 and for QLoRA, whose residual stream is fp32 (`activation_dtype_bytes`)):
* weights: full = 4N (fp32 master weights, studykit.policy.models); lora = b x N; qlora = NF4 decoder linears at
  NF4_BYTES per weight (4 bits + double-quantised absmax) plus everything else at 4 bytes, since peft's
  `prepare_model_for_kbit_training` casts embeddings, lm_head and norms to fp32.
* trainable state: params + grads + AdamW's two moments, fp32: 16 bytes per LoRA parameter; full: 12N beside the
  master weights. A full fine-tune's KL reference (algo.kl_coef > 0) is a 4N frozen copy; LoRA's costs nothing.
* activations of one micro-batch (m sequences of L = prompt + response tokens), from the tensors a Llama/Qwen2
  decoder layer saves for backward (`layer_bytes_per_token`); with gradient checkpointing only each layer's input
  (b x H per token) is kept, plus one layer's activations while it is recomputed (`activation_bytes`). One layer's
  backward and the logits are not alive at once (the logits are freed before the layers' backward starts), so the
  update's peak counts the larger of the two.
* logits: m x (response + 1) x vocab in the lm_head's dtype (fp32 under QLoRA), held until backward, plus the
  chunked log-softmax's fp32 temporaries, CHUNK_TEMPORARIES x train.logprob_chunk x vocab x 4.
* vLLM: its share is gpu_memory_utilization x the GPU's memory, holding its weights (bf16, or 4-bit with
  `quantization: bitsandbytes`), VLLM_RUNTIME of activations and the KV cache (2 x layers x kv_heads x head_dim x
  2 bytes per token); asleep during the update (enable_sleep_mode) it keeps VLLM_ASLEEP. The HF sampler's KV cache
  and logits instead live in the trainer.
The peak is the larger of the sampling phase (trainer weights + optimizer state + the sampler) and the update phase
(trainer weights + optimizer state + grads + one micro-batch + the sleeping or awake vLLM), plus CUDA_OVERHEAD.
The constants marked estimated have not been measured on a GPU; `bench/memory.py` checks the activation and logits
terms against peak RSS on CPU, `bench/gpu_check.py` prints the prediction beside CUDA's own peak.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from studykit.planning.arch import Arch, ArchUnknown, load_arch, lora_params
from studykit.planning.memory import (  # noqa: F401 (the arithmetic, public here too)
    CHUNK_TEMPORARIES, GiB, NF4_BYTES, activation_bytes, kv_bytes_per_token, layer_bytes_per_token, logits_bytes,
    vllm_weight_bytes, weight_bytes,
)

CUDA_OVERHEAD = 1.0 * GiB
"""CUDA context, cuBLAS workspace and allocator slack (estimated, not measured)."""
VLLM_RUNTIME = 1.5 * GiB
"""vLLM's activation peak and buffers inside its share beside weights and KV cache, enforce_eager (estimated)."""
VLLM_ASLEEP = 0.5 * GiB
"""What a vLLM engine keeps on the GPU asleep at level 1 (its CUDA context; estimated)."""
PROMPT_TOKENS = 256
"""Prompt length in tokens assumed only when the run's task pools cannot be read (a user's file missing):
otherwise the plan uses the longest templated prompt (`studykit.planning.prompt_lengths`); `--prompt-tokens` overrides."""
SKIP_ENV = "STUDYKIT_SKIP_PLAN"
"""Set to 1 to start a CUDA run the pre-flight check would refuse (it is an estimate)."""


class PlanRefused(RuntimeError):
    """The run cannot fit the GPU; the message names the settings to change."""


@dataclass
class Part:
    name: str
    bytes: float
    note: str = ""
    group: str = ""
    """Parts of different non-empty groups are not alive at once: a phase's peak counts only its largest group."""


@dataclass
class Plan:
    arch: Arch
    sample: list[Part]
    """Parts alive while sampling."""
    update: list[Part]
    """Parts alive during one micro-batch's forward/backward."""
    total: float | None
    """The GPU's memory (bytes); None when unknown."""
    free: float | None
    """Free memory at planning time (bytes); None when unknown."""
    gpu: str
    """Where total/free came from."""
    problems: list[str] = field(default_factory=list)
    """Why the run cannot fit, each naming the setting to change."""
    timing: str = "unmeasured"
    prompts: str = ""
    """Where the planned prompt length came from (`prompt_lengths.planned`)."""

    @property
    def sample_peak(self) -> float:
        return _peak(self.sample)

    @property
    def update_peak(self) -> float:
        return _peak(self.update) if self.update else 0.0

    @property
    def peak(self) -> float:
        return max(self.sample_peak, self.update_peak)

    @property
    def fits(self) -> bool:
        return not self.problems

    def report(self) -> str:
        a = self.arch
        lines = [f"model {a.name}: {a.n_params / 1e9:.2f}B parameters ({a.source}); estimated, not measured"]
        for title, parts, peak in (("sampling", self.sample, self.sample_peak), ("update", self.update, self.update_peak)):
            if not parts:
                continue
            lines.append(f"  {title} phase: {_gib(peak)} GiB")
            lines += [f"    {p.name:28s} {_gib(p.bytes):>8s} GiB  {p.note}" + (" (*)" if p.group else "")
                      for p in parts if p.bytes > 0]
            lines.append(f"    {'CUDA context + slack':28s} {_gib(CUDA_OVERHEAD):>8s} GiB  estimated")
        if any(p.group for p in self.update):
            lines.append("  (*) the logits and one layer's backward are not in memory at once: the larger counts")
        lines.append(f"  expected peak {_gib(self.peak)} GiB; GPU: " + (
            f"{_gib(self.free)} GiB free of {_gib(self.total)} GiB ({self.gpu})" if self.total else self.gpu))
        if self.prompts:
            lines.append(f"  prompts: {self.prompts}")
        lines.append(f"  time per step: {self.timing}")
        lines.append("  fit not checked (GPU memory unknown)" if self.total is None else "  fits" if self.fits else "  DOES NOT FIT:\n" + "\n".join(f"    - {p}" for p in self.problems))
        return "\n".join(lines)


def _gib(x: float | None) -> str:
    return "?" if x is None else f"{x / GiB:.2f}"


# ---- a plan from a run config


@dataclass(frozen=True)
class Shape:
    """What the plan depends on, read from a RunConfig (`shape_of`) or set directly (bench/, tests)."""

    finetune: str
    b: int
    """Compute bytes per element (2 for bf16/fp16, 4 for fp32)."""
    micro: int
    """Sequences per forward/backward."""
    minibatch: int
    prompt: int
    response: int
    chunk: int
    checkpointing: bool
    rank: int
    targets: Any
    kl_coef: float = 0.0
    sampler: str = "hf"
    vllm_util: float = 0.5
    vllm_sleep: bool = False
    vllm_quantized: bool = False
    hf_max_batch: int = 128
    rollout_rows: int = 1
    trains: bool = True
    """False for train.steps 0 (alignment cells): only the sampling phase happens."""
    sample_response: int = 0
    """Longest response sampled (training or evaluation); 0 = `response`."""
    power: bool = False
    """An evaluation-only power-sampling run (`eval.sampler: power`): the sampling phase adds its scoring pass."""


def shape_of(cfg, arch: Arch, prompt_tokens: int = PROMPT_TOKENS) -> Shape:
    """The Shape of a studykit.config.schema.RunConfig (unset options take the code's defaults)."""
    from studykit.policy.models import AUTO_CHECKPOINTING_PARAMS

    t, m = cfg.train, cfg.model
    rows = t.prompts_per_step * t.group_size
    minibatch = -(-rows // min(t.mini_batches, rows))
    ckpt = m.gradient_checkpointing
    if ckpt is None:
        ckpt = not m.name.startswith("toy:") and arch.n_params >= AUTO_CHECKPOINTING_PARAMS
    so = t.sampler_options
    return Shape(finetune=m.finetune, b=4 if m.dtype == "float32" else 2, micro=min(t.micro_batch_size or minibatch,
                 minibatch), minibatch=minibatch, prompt=prompt_tokens, response=t.max_new_tokens,
                 chunk=t.logprob_chunk, checkpointing=bool(ckpt), rank=m.lora_rank if m.finetune != "full" else 0,
                 targets=m.target_modules, kl_coef=cfg.algo.kl_coef, sampler=t.sampler,
                 vllm_util=float(so.get("gpu_memory_utilization", 0.5)), vllm_sleep=bool(so.get("enable_sleep_mode")),
                 vllm_quantized=so.get("quantization") == "bitsandbytes", hf_max_batch=int(so.get("max_batch", 128)),
                 rollout_rows=t.prompts_per_step * (cfg.reward.votes or t.group_size) if t.steps  # TTRL's extra votes
                 else int(so.get("max_batch", 128)), trains=t.steps > 0,
                 sample_response=max(t.max_new_tokens, cfg.eval.max_new_tokens or 0), power=cfg.eval.sampler == "power")


def parts_of(arch: Arch, s: Shape, total: float | None) -> tuple[list[Part], list[Part], list[str]]:
    """(sampling-phase parts, update-phase parts, vLLM problems) of a Shape on a GPU of `total` bytes."""
    n_lora = lora_params(arch, s.rank, s.targets) if s.finetune != "full" else 0
    weights = Part("policy weights", weight_bytes(arch, s.finetune, s.b), {
        "full": "fp32 master weights", "lora": f"{s.b}-byte base",
        "qlora": "NF4 linears + fp32 embeddings/lm_head/norms"}[s.finetune])
    if s.finetune == "full":
        train_params = Part("AdamW state", 8 * arch.n_params, "fp32 moments")
        grads = Part("gradients", 4 * arch.n_params, "fp32")
    else:
        train_params = Part("LoRA params + AdamW", 12 * n_lora, f"{n_lora / 1e6:.1f}M fp32 params, r={s.rank}")
        grads = Part("LoRA gradients", 4 * n_lora, "fp32")
    static = [weights, train_params]
    if s.kl_coef > 0 and s.finetune == "full":
        static.append(Part("KL reference copy", 4 * arch.n_params, "frozen fp32 copy"))
    if s.finetune == "full" and s.b == 2:
        static.append(Part("autocast weight cache", 2 * arch.n_params, "bf16 copies of the weights under autocast"))
    seq_len = s.prompt + s.response
    act_b = activation_dtype_bytes(s)
    lora_kw = dict(lora_fp32_inputs=s.finetune != "full" and act_b == 2, rank=s.rank,
                   n_adapted=len(_layer_targets(arch, s)))
    act, layer = activation_bytes(arch, s.micro, seq_len, act_b, s.checkpointing, **lora_kw)
    logits_b = 4 if s.finetune == "qlora" or s.b == 4 else 2
    logits, chunk = logits_bytes(arch, s.micro, s.response, logits_b, s.chunk)
    ck = "with" if s.checkpointing else "without"
    update = [*static, grads, Part("activations", act, f"micro-batch {s.micro} x {seq_len} tokens, {ck} checkpointing"),
              Part("one layer's backward", layer, "recomputed layer + MLP gradients" if s.checkpointing else
                   "MLP gradients", group="layer"),
              Part("logits", logits, f"{s.micro} x {s.response + 1} x {arch.vocab} x {logits_b} bytes", group="head"),
              Part("log-softmax chunk", chunk, f"{CHUNK_TEMPORARIES} x {min(s.chunk, s.micro * s.response)} rows fp32",
                   group="head")]
    if not s.trains:
        update = []
    seq_len = s.prompt + max(s.response, s.sample_response)  # the longest sequence the sampler holds
    problems: list[str] = []
    if s.sampler == "vllm":
        share = s.vllm_util * total if total else 0.0
        vw = vllm_weight_bytes(arch, s.vllm_quantized)
        kv = share - vw - VLLM_RUNTIME
        per_tok = kv_bytes_per_token(arch)
        cap = max(kv, 0) / per_tok
        note = f"gpu_memory_utilization {s.vllm_util}: weights {_gib(vw)} GiB, KV cache {cap:,.0f} tokens"
        sample = [*static, Part("vLLM share", share, note)]
        if s.trains:
            update.append(Part("vLLM asleep", VLLM_ASLEEP, "enable_sleep_mode, estimated") if s.vllm_sleep else
                          Part("vLLM share (awake)", share, "no enable_sleep_mode: kept during the update"))
        if total and cap < seq_len:
            need = (vw + VLLM_RUNTIME + seq_len * per_tok) / total
            fix = f"raise train.sampler_options.gpu_memory_utilization to at least {need:.2f}"
            if s.finetune == "qlora" and not s.vllm_quantized:
                q = (vllm_weight_bytes(arch, True) + VLLM_RUNTIME + seq_len * per_tok) / total
                fix += (f"; or serve the NF4 base (train.sampler_options.quantization: bitsandbytes, slower decoding) "
                        f"with gpu_memory_utilization at least {q:.2f}")
            problems.append(f"vLLM's share ({_gib(share)} GiB) does not hold its weights ({_gib(vw)} GiB) and one "
                            f"{seq_len}-token sequence of KV cache: {fix}")
    else:
        rows = min(s.hf_max_batch, s.rollout_rows)
        sample = [*static, Part("HF sampler KV cache", rows * seq_len * kv_bytes_per_token(arch, s.b),
                                f"{rows} rows x {seq_len} tokens"),
                  Part("HF sampler logits", 2 * rows * arch.vocab * 4, f"{rows} rows x vocab, fp32")]
    if s.power:
        sample.append(power_scoring_part(arch, max(s.response, s.sample_response)))
    return sample, update, problems


def power_scoring_part(arch: Arch, response: int) -> Part:
    """Power sampling's teacher-forced scoring pass (studykit.policy.sampling.power_hf): a pass keeps at most
    LOGIT_ELEMENTS logits (at least one row's), held at once as the model's bf16 output, its fp32 copy and two
    fp32 temporaries of the log-softmax: 14 bytes per element."""
    from studykit.policy.sampling.power_hf import LOGIT_ELEMENTS

    elements = max(LOGIT_ELEMENTS, (response + 1) * arch.vocab)
    return Part("power scoring pass", 14 * elements, f"{elements / 2**20:,.0f}M logits x 14 bytes (bf16 + 3 fp32)")


def activation_dtype_bytes(s: Shape) -> int:
    """Bytes per element of the residual stream and the tensors saved for backward. QLoRA's is fp32 whatever the
    compute dtype: `prepare_model_for_kbit_training` casts embeddings and norms to fp32, and bitsandbytes'
    Linear4bit computes in the compute dtype but returns its input's dtype, so every hidden state, q/k/v and MLP
    tensor stays fp32 (and peft's adapters need no fp32 input copies)."""
    return 4 if s.finetune == "qlora" else s.b


def _layer_targets(arch: Arch, s: Shape) -> list:
    """Adapted linears of one decoder layer (their lora_A outputs are saved per token)."""
    if s.finetune == "full":
        return []
    from studykit.planning.arch import lora_targets

    return [t for t in lora_targets(arch, s.targets) if t[0].split(".")[:3] == arch.linears[0][0].split(".")[:3]]


def _peak(parts: list[Part]) -> float:
    """Ungrouped parts + the largest group + CUDA_OVERHEAD."""
    groups: dict[str, float] = {}
    for p in parts:
        groups[p.group] = groups.get(p.group, 0.0) + p.bytes
    fixed = groups.pop("", 0.0)
    return fixed + max(groups.values(), default=0.0) + CUDA_OVERHEAD


def fit_problems(arch: Arch, s: Shape, total: float, free: float) -> list[str]:
    """Why a Shape does not fit `free` bytes of a `total`-byte GPU, each with the settings that would fix it."""
    sample, update, problems = parts_of(arch, s, total)
    need = _peak(update)
    if s.trains and need > free:
        fixes = []
        fitting = [m for m in range(s.micro - 1, 0, -1) if _peak(parts_of(arch, replace(s, micro=m), total)[1]) <= free]
        if fitting:
            fixes.append(f"train.micro_batch_size {fitting[0]} (now {s.micro})")
        else:
            lengths = [r for r in _halvings(s.response)
                       if _peak(parts_of(arch, replace(s, micro=1, response=r), total)[1]) <= free]
            if lengths:
                fixes.append(f"train.micro_batch_size 1 and train.max_new_tokens {lengths[0]} (now {s.response})")
        if not s.checkpointing:
            fixes.append(f"model.gradient_checkpointing true (the update then needs "
                         f"{_gib(_peak(parts_of(arch, replace(s, checkpointing=True), total)[1]))} GiB)")
        if s.sampler == "vllm" and not s.vllm_sleep:
            fixes.append("train.sampler_options.enable_sleep_mode true (vLLM's share is freed during the update)")
        if s.finetune == "full":
            fixes.append("model.finetune lora or qlora")
        problems.append(f"the update needs {_gib(need)} GiB and {_gib(free)} GiB are free; change "
                        + ("; or ".join(fixes) if fixes else "the model or the GPU (no setting here makes it fit)"))
    if _peak(sample) > free:
        if s.sampler == "vllm":
            room = free - _peak([p for p in sample if not p.name.startswith("vLLM")])
            fixes = [f"train.sampler_options.gpu_memory_utilization at most {max(room, 0) / total:.2f} "
                     f"(now {s.vllm_util})"]
            if s.finetune == "qlora" and not s.vllm_quantized:
                fixes.append("train.sampler_options.quantization bitsandbytes (vLLM serves the NF4 base: "
                             f"{_gib(vllm_weight_bytes(arch, True))} instead of {_gib(vllm_weight_bytes(arch, False))}"
                             " GiB of weights, slower decoding)")
        else:
            fixes = [f"train.sampler_options.max_batch below {min(s.hf_max_batch, s.rollout_rows)}"]
        problems.append(f"sampling needs {_gib(_peak(sample))} GiB and {_gib(free)} GiB are free; change "
                        + "; or ".join(fixes))
    return problems


def _halvings(n: int) -> list[int]:
    out = []
    while n > 1:
        n //= 2
        out.append(n)
    return out


def gpu_memory(gib: float | None = None) -> tuple[float | None, float | None, str]:
    """(total, free, source): `gib` when given (planning for another card), else torch.cuda.mem_get_info."""
    if gib is not None:
        if not math.isfinite(gib) or gib <= 0:  # nan compares false with everything: it "fit" any plan
            raise ValueError(f"--gpu-memory: expected a positive, finite number of GiB, got {gib}")
        return gib * GiB, gib * GiB, f"--gpu-memory {gib:g}"
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return float(total), float(free), f"{torch.cuda.get_device_name()}, torch.cuda.mem_get_info"
    return None, None, "no CUDA device here: pass --gpu-memory GiB to plan for one"


def make_plan(cfg, gib: float | None = None, prompt_tokens: int | None = None, timing: str = "unmeasured") -> Plan:
    """The plan of a RunConfig on this machine's GPU, or on a `gib`-GiB one; prompts as long as the longest of the
    run's pools (`prompt_lengths.planned`) unless `prompt_tokens` is given."""
    from studykit.planning.prompt_lengths import planned

    arch = load_arch(cfg.model.name, dict(cfg.model.toy) or None)
    if prompt_tokens is None:
        prompt_tokens, note = planned(cfg, PROMPT_TOKENS)
    else:
        note = f"{prompt_tokens} tokens (--prompt-tokens)"
    s = shape_of(cfg, arch, prompt_tokens)
    total, free, gpu = gpu_memory(gib)
    sample, update, problems = parts_of(arch, s, total)
    if total is not None:
        problems = fit_problems(arch, s, total, free)
    return Plan(arch, sample, update, total, free, gpu, problems, timing, prompts=note)


def preflight(cfg, log=None) -> Plan | None:
    """The check at the start of a run, before weights load: skipped without CUDA or for an unknown architecture
    (a log line says so), else the plan is logged and PlanRefused raised when it does not fit (unless SKIP_ENV)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    import torch

    if not torch.cuda.is_available():
        log("studykit plan: pre-flight memory check skipped (no CUDA device; it plans GPU runs)")
        return None
    try:
        plan = make_plan(cfg)
    except ArchUnknown as err:
        log(f"studykit plan: pre-flight memory check skipped ({err})")
        return None
    log(plan.report())
    if not plan.fits:
        if os.environ.get(SKIP_ENV) == "1":
            log(f"studykit plan: {SKIP_ENV}=1, starting anyway")
            return plan
        raise PlanRefused(f"{cfg.run_name()}: the run does not fit this GPU (estimated; {SKIP_ENV}=1 starts it "
                          "anyway):\n  - " + "\n  - ".join(plan.problems))
    return plan
