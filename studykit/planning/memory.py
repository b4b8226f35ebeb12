"""The memory arithmetic of a GRPO run, in bytes, as pure functions of an architecture (`studykit.planning.arch`)
and a batch shape: a layer's activations per token, the logits window of the chunked log-probs, the weights of a
full / LoRA / QLoRA policy, vLLM's weights and KV cache. `studykit.planning.plan` adds them up into the phases of
a run (its docstring is the memory model)."""

from __future__ import annotations

from typing import Any

from studykit.planning.arch import Arch

GiB = 2 ** 30
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
"""bitsandbytes NF4 with double quantisation (QLoRA, Dettmers et al. 2023): 4 bits a weight, an 8-bit absmax per
64-weight block, an fp32 constant per 256 blocks."""
CHUNK_TEMPORARIES = 3
"""fp32 [chunk, vocab] temporaries alive at once in grpo.chunked_token_logprobs: forward log-softmax, its exp and
their product; backward log-softmax, the scattered gradient and its log-softmax backward (bench/memory.py)."""



def layer_bytes_per_token(arch: Arch, b: int, lora_fp32_inputs: bool = False, rank: int = 0,
                          n_adapted: int = 0, gqa_expanded: bool = True) -> float:
    """Bytes one decoder layer saves for backward per token: two RMSNorms' fp32 inputs (4H each), the normed
    inputs of attention and MLP (bH each), q, k, v as SDPA sees them (k and v repeated to all heads when a padding
    mask stops SDPA's own GQA: transformers' repeat_kv), SDPA's output and o_proj's contiguous copy of it, and
    the MLP's gate, SiLU, up and product (bI each). LoRA adds lora_A's r-dim outputs, and an fp32 copy of each
    adapted linear's input when the base computes in bf16 (peft casts inputs to the adapters' fp32)."""
    H, I, kv = arch.hidden, arch.intermediate, arch.kv_heads * arch.head_dim
    k_width = arch.heads * arch.head_dim if gqa_expanded else kv
    attn = arch.heads * arch.head_dim
    out = 8 * H + b * (2 * H + attn + 2 * k_width + 2 * attn + 4 * I)
    out += 4 * rank * n_adapted
    if lora_fp32_inputs:
        out += 4 * (3 * H + attn + 2 * H + I)  # q/k/v, o, gate/up, down inputs cast to fp32
    return out


def activation_bytes(arch: Arch, seqs: int, seq_len: int, b: int, checkpointing: bool,
                     **layer_kw: Any) -> tuple[float, float]:
    """(activations saved through forward and backward, the working set of one layer's backward) of a micro-batch:
    without checkpointing every layer's saved tensors, else each layer's input (b x H per token) while the layer
    being recomputed is the working set; the working set also holds the MLP's gradient temporaries (3 x I x b per
    token). The final norm's fp32 input and the lm_head's input are kept too."""
    tokens = seqs * seq_len
    per_layer = tokens * layer_bytes_per_token(arch, b, **layer_kw)
    head = tokens * (4 + b) * arch.hidden
    grads = 3 * tokens * arch.intermediate * b
    if checkpointing:
        return arch.layers * tokens * b * arch.hidden + head, per_layer + grads
    return arch.layers * per_layer + head, grads


def logits_bytes(arch: Arch, seqs: int, response: int, logits_b: int, chunk: int) -> tuple[float, float]:
    """(logits kept for backward, chunked log-softmax temporaries) of one micro-batch."""
    rows = min(chunk, seqs * response)
    return seqs * (response + 1) * arch.vocab * logits_b, CHUNK_TEMPORARIES * rows * arch.vocab * 4


def weight_bytes(arch: Arch, finetune: str, b: int) -> float:
    if finetune == "full":
        return 4 * arch.n_params
    if finetune == "qlora":
        return arch.n_decoder_linear * NF4_BYTES + 4 * (arch.n_params - arch.n_decoder_linear)
    return b * arch.n_params


def vllm_weight_bytes(arch: Arch, quantized: bool) -> float:
    if quantized:
        return arch.n_decoder_linear * NF4_BYTES + 2 * (arch.n_params - arch.n_decoder_linear)
    return 2 * arch.n_params


def kv_bytes_per_token(arch: Arch, b: int = 2) -> float:
    return 2 * arch.layers * arch.kv_heads * arch.head_dim * b
