"""Policies: a causal LM and its tokenizer, fully trainable or with LoRA / QLoRA adapters.

`load_policy` takes a hub id, a local folder, or `toy:<preset>` (built and cached by `studykit.toy.ensure_built`)
and returns a `Policy`:

* `full`  - every parameter trainable (what the paper does: verl full fine-tuning).
* `lora`  - peft `LoraConfig(r, lora_alpha, lora_dropout, target_modules, task_type="CAUSAL_LM")`; only the
  `lora_` weights train.
* `qlora` - the base is loaded in 4-bit NF4 (double quantisation, compute dtype = `dtype`) through
  bitsandbytes, prepared with `prepare_model_for_kbit_training` (which casts the remaining bf16/fp16 weights -
  norms, embeddings, lm_head - to fp32) and LoRA on top. This works on CPU with bitsandbytes >= 0.49: the 4-bit
  layers are placed with `device_map={"": device}` at load time, so they are quantised on the device they will
  run on.

Precision: whatever `dtype` is, every TRAINABLE parameter (and so the optimiser state) is float32. LoRA/QLoRA
adapters are fp32 beside a `dtype` base (peft's adapter autocast, checked here). A `full` fine-tune in bfloat16
keeps fp32 master weights and runs its forward passes under `torch.autocast(bfloat16)` (`Policy.autocast`): pure
bf16 weights would round an lr-1e-6 AdamW update away. `full` + float16 is refused (fp16 training needs loss
scaling, which studykit does not do). `Policy.dtype` is the compute dtype, the one vLLM serves the base in.

Gradient checkpointing (non-reentrant, recompute each decoder layer in backward): `gradient_checkpointing=None`
means auto - on for models of at least AUTO_CHECKPOINTING_PARAMS parameters that are not `toy:` models, off for
the toy and other tiny models. It changes memory and time, not gradients.

`load_policy` also takes the policy a finished training run kept: `runs:/<run_id>/policy`, or a folder holding
`studykit_policy.json` beside the weights; `studykit.policy.store` loads it back with the settings it recorded.
`load_pretrained` is the same loader for base weights only.

Departure from the paper: LoRA / QLoRA are studykit's single-GPU scale-down; the paper fine-tunes all weights.

The tokenizer always pads on the left (batched generation needs it) and uses eos as pad when it has no pad.
`Policy.save` writes the adapter only for lora/qlora and model + tokenizer for full; `load_state` reads either
back into an existing policy (resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contextlib

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

FINETUNES = ("full", "lora", "qlora")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ADAPTER_FILE = "adapter_model.safetensors"
POLICY_METADATA = "studykit_policy.json"
"""What a stored policy folder holds beside its weights (see studykit.policy.store)."""
AUTO_CHECKPOINTING_PARAMS = 100_000_000
"""`gradient_checkpointing=None` turns checkpointing on for non-toy models with at least this many parameters."""


@dataclass
class Policy:
    """The trainable model, its tokenizer and where its base weights live."""

    model: torch.nn.Module
    """A PeftModel for lora/qlora, else the plain causal LM."""
    tokenizer: PreTrainedTokenizerBase
    """padding_side="left", pad_token set."""
    name: str
    """What was asked for, e.g. "toy:strong" or "Qwen/Qwen2.5-7B"."""
    finetune: str
    """"full" | "lora" | "qlora"."""
    base_path: str
    """Local folder or hub id of the base weights (what vLLM loads)."""
    dtype: str = "float32"
    """Compute dtype of the forward pass (the configured `dtype`; vLLM serves the base in it)."""
    gradient_checkpointing: bool = False
    """Whether the training forward recomputes activations in backward."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def autocast(self):
        """Context for forward passes: bf16 autocast over fp32 master weights for a bf16 full fine-tune, else
        nothing (the weights already are in the compute dtype)."""
        if self.finetune == "full" and self.dtype != "float32":
            return torch.autocast(self.device.type, dtype=DTYPES[self.dtype])
        return contextlib.nullcontext()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def save(self, path: str | Path) -> Path:
        """Adapter only (peft `save_pretrained`) for lora/qlora; model weights + tokenizer for full."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        if self.finetune == "full":
            self.tokenizer.save_pretrained(path)
        return path


def _check_choice(field: str, value: str, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not supported; expected one of {sorted(allowed)}")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_source(name_or_path: str, toy_knobs: dict[str, Any] | None = None) -> str:
    """Where to load weights from: a built toy folder, an existing local folder, or the hub id itself."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ValueError(f"model name_or_path must be a non-empty string, got {name_or_path!r}")
    if name_or_path.startswith("toy:"):
        return str(_build_toy(name_or_path[len("toy:"):], toy_knobs))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json (expected a save_pretrained folder)")
        return str(path.resolve())
    if name_or_path.startswith((".", "/", "~")) or path.exists():
        raise FileNotFoundError(f"model folder {name_or_path!r} does not exist (or is not a folder)")
    return name_or_path  # a hub id


def _build_toy(preset: str, toy_knobs: dict[str, Any] | None) -> Path:
    try:
        from studykit.toy import ensure_built
    except ImportError as exc:
        raise ImportError(
            f"model 'toy:{preset}' needs studykit.toy.ensure_built, which is not available ({exc})"
        ) from None
    if not preset:
        raise ValueError("model name 'toy:' needs a preset, e.g. 'toy:strong'")
    return Path(ensure_built(preset, **(toy_knobs or {})))


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    tok = AutoTokenizer.from_pretrained(source)
    tok.padding_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {source!r} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def _qlora_config(dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def _load_base(source: str, finetune: str, dtype: torch.dtype, device: str) -> torch.nn.Module:
    if finetune == "qlora":
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=_qlora_config(dtype), dtype=dtype, device_map={"": device}
        )
        _disable_cpu_weight_packing(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    return model


def _disable_cpu_weight_packing(model: torch.nn.Module) -> None:
    """Keep bitsandbytes' Linear4bit on its autograd path on CPU.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight the first time it runs a forward in eval
    mode without grad (i.e. while sampling): absmax becomes bf16, double quantisation is undone, and every later
    forward, including training ones, goes through `gemv_4bit`, which has no autograd kernel (gradients through
    the frozen base layers are then wrong). `state_dict()` undoes the packing lossily, so saving an adapter would
    also shift the base weights. Turning the flag off keeps one exact, differentiable path.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


_CHECKPOINTING = {"use_reentrant": False}  # non-reentrant: works with frozen inputs and restores autocast


def _add_lora(model, finetune, rank, alpha, dropout, target_modules, gradient_checkpointing):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if finetune == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=dict(_CHECKPOINTING))
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(_CHECKPOINTING))
        model.enable_input_require_grads()
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config, autocast_adapter_dtype=True)
    for p in model.parameters():  # adapters (and so optimiser state) in fp32 whatever the base dtype
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return model


def auto_checkpointing(name_or_path: str, model: torch.nn.Module) -> bool:
    """The `gradient_checkpointing=None` rule: on for non-toy models of at least AUTO_CHECKPOINTING_PARAMS."""
    if name_or_path.startswith("toy:"):
        return False
    return sum(p.numel() for p in model.parameters()) >= AUTO_CHECKPOINTING_PARAMS


def load_policy(
    name_or_path: str,
    finetune: str | None = None,
    dtype: str | None = None,
    lora_rank: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float | None = None,
    target_modules: str | list[str] | None = None,
    toy_knobs: dict | None = None,
    device: str | None = None,
    gradient_checkpointing: bool | None = False,
    tracking_uri: str | None = None,
) -> Policy:
    """Load a policy from a hub id, a local folder, `toy:<preset>`, or a stored policy (see the module docstring).

    Unset options take `load_pretrained`'s defaults, or for a stored policy what it recorded; `tracking_uri` only
    matters for `runs:/` sources. `gradient_checkpointing=None` = the auto rule (`auto_checkpointing`).
    """
    options = dict(finetune=finetune, dtype=dtype, lora_rank=lora_rank, lora_alpha=lora_alpha,
                   lora_dropout=lora_dropout, target_modules=target_modules)
    if is_stored(name_or_path):
        from studykit.policy.store import load_stored

        return load_stored(name_or_path, load_pretrained, load_state, device=device,
                           gradient_checkpointing=gradient_checkpointing,
                           tracking_uri=tracking_uri, **options)
    given = {k: v for k, v in options.items() if v is not None}
    return load_pretrained(name_or_path, toy_knobs=toy_knobs, device=device,
                           gradient_checkpointing=gradient_checkpointing, **given)


def is_stored(name_or_path: str) -> bool:
    """A `runs:/<run_id>/...` URI or a folder holding a policy saved by a training run (POLICY_METADATA)."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        return False
    return name_or_path.startswith("runs:/") or (Path(name_or_path).expanduser() / POLICY_METADATA).is_file()


def load_pretrained(
    name_or_path: str,
    finetune: str = "full",
    dtype: str = "float32",
    lora_rank: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.0,
    target_modules: str | list[str] = "all-linear",
    toy_knobs: dict | None = None,
    device: str | None = None,
    gradient_checkpointing: bool | None = False,
) -> Policy:
    """A policy from base weights: a hub id, a local save_pretrained folder or `toy:<preset>` (precision and
    checkpointing: see the module docstring)."""
    _check_choice("finetune", finetune, FINETUNES)
    _check_choice("dtype", dtype, DTYPES)
    if finetune == "full" and dtype == "float16":
        raise ValueError("finetune 'full' with dtype 'float16' is not supported: fp16 training needs loss scaling, "
                         "which studykit does not do; use dtype 'bfloat16' (fp32 master weights, bf16 autocast) or "
                         "'float32'")
    if lora_rank < 1 or lora_alpha < 1 or not 0 <= lora_dropout < 1:
        raise ValueError(
            f"need lora_rank >= 1, lora_alpha >= 1, 0 <= lora_dropout < 1; got {lora_rank}, {lora_alpha}, {lora_dropout}"
        )
    source = resolve_source(name_or_path, toy_knobs)
    device = device or default_device()
    tokenizer = load_tokenizer(source)
    # full fine-tuning keeps fp32 master weights; bf16 is its compute dtype (Policy.autocast)
    model = _load_base(source, finetune, torch.float32 if finetune == "full" else DTYPES[dtype], device)
    if gradient_checkpointing is None:
        gradient_checkpointing = auto_checkpointing(name_or_path, model)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if finetune == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(_CHECKPOINTING))
    else:
        model = _add_lora(model, finetune, lora_rank, lora_alpha, lora_dropout, target_modules, gradient_checkpointing)
    return Policy(model=model, tokenizer=tokenizer, name=name_or_path, finetune=finetune, base_path=source,
                  dtype=dtype, gradient_checkpointing=bool(gradient_checkpointing))


def from_config(cfg) -> Policy:
    """A policy from a `studykit.config.schema.ModelConfig` (toy knobs only reach `toy:custom`)."""
    knobs = dict(cfg.toy) if cfg.name == "toy:custom" and cfg.toy else None
    return load_policy(
        cfg.name,
        finetune=cfg.finetune,
        dtype=cfg.dtype,
        lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        toy_knobs=knobs,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


def load_state(policy: Policy, path: str | Path) -> Policy:
    """Restore what `Policy.save` wrote at `path` into `policy` (in place; returns it)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    if policy.finetune == "full":
        _load_full(policy.model, path)
    else:
        _load_adapter(policy.model, path)
    return policy


def _load_adapter(model, path: Path) -> None:
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    if not (path / ADAPTER_FILE).is_file() and not (path / "adapter_model.bin").is_file():
        raise FileNotFoundError(f"{path} holds no LoRA adapter ({ADAPTER_FILE}); was it saved by a lora/qlora policy?")
    weights = load_peft_weights(str(path), device=str(next(model.parameters()).device))
    result = set_peft_model_state_dict(model, weights)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing_lora = [k for k in getattr(result, "missing_keys", []) or [] if "lora_" in k]
    if unexpected or missing_lora:
        raise ValueError(
            f"adapter at {path} does not match the policy: unexpected {unexpected[:5]}, missing {missing_lora[:5]}"
        )


def _load_full(model: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    if (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} holds a LoRA adapter, not full weights; the policy is a full fine-tune")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path} holds no *.safetensors weights; was it saved by a full fine-tune policy?")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    result = model.load_state_dict(state, strict=False)
    loaded = {p.data_ptr() for k, p in model.state_dict().items() if k in state}
    missing = [k for k in result.missing_keys if model.state_dict()[k].data_ptr() not in loaded]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"weights at {path} do not match the policy: unexpected {result.unexpected_keys[:5]}, missing {missing[:5]}"
        )
