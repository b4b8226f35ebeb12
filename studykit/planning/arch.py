"""Model architectures for planning: a causal LM's config, its parameter counts and its LoRA parameter count,
without loading a single weight.

Where a config comes from (`find_config`), first match wins: a `toy:<preset>` recipe (studykit.toy), a local
folder's `config.json`, the Hugging Face cache (`huggingface_hub.try_to_load_from_cache`, no network), then the
configs shipped in `studykit/data/model_configs/` (`<owner>__<name>.json`, written from the models' published
config.json facts, so the paper grid plans offline). The model is then built on the meta device (no memory) and
its parameters counted, so the counts are transformers' own, not a formula's.

LoRA counts follow peft's matching: `all-linear` = every `nn.Linear` but the output layer; a list of names = the
linears whose qualified name is, or ends with `.`, one of them; another string = a regular expression that must
match the whole qualified name. An adapter on a linear of shape (in, out) has r x (in + out) parameters.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "model_configs"


class ArchUnknown(LookupError):
    """No config for a model name anywhere this module looks."""


@dataclass(frozen=True)
class Arch:
    """What the planner needs of a decoder-only transformer."""

    name: str
    """The model name that was asked for."""
    source: str
    """Where the config came from (a file path, `hf-cache`, `shipped:<file>`, `toy`)."""
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    """Input embedding and lm_head share one matrix."""
    n_params: int
    """All parameters (tied ones once), counted on the meta device."""
    n_embedding: int
    """Parameters of the input embedding and the lm_head (once when tied): not quantised by QLoRA."""
    n_decoder_linear: int
    """Weights of the decoder's linear layers (what NF4 quantises; their biases are not)."""
    linears: tuple[tuple[str, int, int], ...]
    """(qualified name, in_features, out_features) of every linear but the lm_head."""

    @property
    def n_other(self) -> int:
        """Norms, biases and anything else that is neither embedding nor a decoder linear."""
        return self.n_params - self.n_embedding - self.n_decoder_linear


def shipped_file(name: str) -> Path:
    return SHIPPED / (name.replace("/", "__") + ".json")


def shipped_names() -> list[str]:
    return sorted(p.stem.replace("__", "/") for p in SHIPPED.glob("*.json"))


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def find_config(name: str, toy_knobs: dict[str, Any] | None = None):
    """(transformers config, source) for `name`; ArchUnknown naming the places looked when there is none."""
    from transformers import AutoConfig

    if name.startswith("toy:"):
        from studykit.toy.presets import recipe_for
        from studykit.toy.pretrain import model_config

        return model_config(recipe_for(name[4:], **(toy_knobs or {}))), "toy"
    if name.startswith("runs:/"):
        raise ArchUnknown(f"{name!r} is a stored policy; plan with its base model's name instead")
    path = Path(name).expanduser()
    if (path / "config.json").is_file():
        return AutoConfig.from_pretrained(str(path)), str(path / "config.json")
    cached = _hf_cache(name)
    if cached is not None:
        return AutoConfig.from_pretrained(str(Path(cached).parent)), f"hf-cache:{cached}"
    ship = shipped_file(name)
    if ship.is_file():
        data = _clean(json.loads(ship.read_text()))
        return AutoConfig.for_model(data.pop("model_type"), **data), f"shipped:{ship.name}"
    raise ArchUnknown(f"no architecture config for {name!r}: not a local folder with config.json, not in the "
                      f"Hugging Face cache, not shipped (studykit/data/model_configs has: {', '.join(shipped_names())})")


def _hf_cache(name: str) -> str | None:
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(name, "config.json")
    return found if isinstance(found, str) else None


def from_config(config, name: str = "", source: str = "") -> Arch:
    """Arch of a transformers config: the model built on the meta device and counted."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    out = model.get_output_embeddings()
    linears = tuple((n, m.in_features, m.out_features) for n, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and m is not out)
    n_params = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    tied = out is not None and out.weight is emb
    n_embedding = emb.numel() + (0 if tied or out is None else out.weight.numel())
    n_linear = sum(i * o for _, i, o in linears)  # weights only: biases stay unquantised
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return Arch(name=name, source=source, hidden=config.hidden_size, intermediate=config.intermediate_size,
                layers=config.num_hidden_layers, heads=heads,
                kv_heads=getattr(config, "num_key_value_heads", None) or heads, head_dim=head_dim,
                vocab=config.vocab_size, tied=tied, n_params=n_params, n_embedding=n_embedding,
                n_decoder_linear=n_linear, linears=linears)


def load_arch(name: str, toy_knobs: dict[str, Any] | None = None) -> Arch:
    """The Arch of a model name (see `find_config` for where its config is read); cached per process."""
    return _load_arch(name, json.dumps(toy_knobs or {}, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _load_arch(name: str, knobs: str) -> Arch:
    config, source = find_config(name, json.loads(knobs) or None)
    return from_config(config, name, source)


def lora_targets(arch: Arch, target_modules: str | list[str]) -> list[tuple[str, int, int]]:
    """The linears peft would put adapters on (module docstring)."""
    if target_modules == "all-linear":
        return list(arch.linears)
    if isinstance(target_modules, str):
        return [lin for lin in arch.linears if re.fullmatch(target_modules, lin[0])]
    return [lin for lin in arch.linears if any(lin[0] == t or lin[0].endswith("." + t) for t in target_modules)]


def lora_params(arch: Arch, rank: int, target_modules: str | list[str] = "all-linear") -> int:
    """Trainable parameters of a LoRA adapter of rank `rank` (r x (in + out) per adapted linear)."""
    return sum(rank * (i + o) for _, i, o in lora_targets(arch, target_modules))
