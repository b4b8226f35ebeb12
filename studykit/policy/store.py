"""The trained policy as an MLflow artifact: `log_policy` keeps it at the end of a finished run, `load_stored` reads
it back (through `studykit.policy.models.load_policy`).

`tracking.save_policy` chooses what the run's artifact folder `policy/` holds:

* `adapter` - the LoRA / QLoRA adapter (peft `save_pretrained`: adapter_config.json, adapter_model.safetensors).
* `full`    - model weights + tokenizer (`save_pretrained`); for a LoRA run, the adapter merged into the base (peft
  `merge_and_unload`, done on a CPU copy so the live policy is untouched). QLoRA + `full` is refused by the config.
* `auto`    - `adapter` for lora/qlora; `full` for full fine-tuning up to FULL_AUTO_MAX_PARAMS parameters, else
  nothing (an optimiser-free copy of a 7B model is 15-30 GB per run; ask for it with `full`).
* `none`    - nothing.

Beside the weights, `studykit_policy.json` (`POLICY_METADATA`) records kind, the base model as the config
names it (and where it resolved to), finetune, dtype, the LoRA settings, the toy knobs, config_hash, run id and step.
The run tag `policy_saved` says what was kept: `adapter`, `full` or `none (<reason>)`.

`load_stored` takes `runs:/<run_id>/policy` (downloaded with mlflow from: the `tracking_uri` given, else the URI
mlflow is set to or $MLFLOW_TRACKING_URI, else studykit's embedded store) or a local folder holding the metadata.
An adapter is put on its base rebuilt from the recorded name and settings (qlora = a 4-bit base again); full
weights load from the folder. Either way the result is a trainable `Policy`. Layering: this module sits with
`tracking` (it reads runs) and imports nothing from `models`, which calls it for stored sources with its loaders.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

POLICY_METADATA = "studykit_policy.json"
"""What a stored policy folder holds beside its weights (the same name as studykit.policy.models.POLICY_METADATA, which
`models.is_stored` reads without importing this module; tests/test_layers.py checks they agree)."""
FULL_AUTO_MAX_PARAMS = 200_000_000
"""`auto` keeps the full weights of a full fine-tune up to this many parameters (the toy models have < 1M)."""
ARTIFACT_DIR = "policy"
TAG = "policy_saved"
FORMAT = 1
LORA_KEYS = ("lora_rank", "lora_alpha", "lora_dropout", "target_modules")


class PolicyNotFound(FileNotFoundError):
    """A stored-policy source that names no run, no `policy/` artifact, or a folder without the metadata."""


def choose_kind(setting: str, finetune: str, n_params: int) -> tuple[str | None, str]:
    """What to keep ("adapter", "full" or None) and the `policy_saved` tag that says so."""
    if setting == "none":
        return None, "none (tracking.save_policy=none)"
    if setting != "auto":
        return setting, setting
    if finetune != "full":
        return "adapter", "adapter"
    if n_params > FULL_AUTO_MAX_PARAMS:
        return None, (f"none (full fine-tune of {n_params / 1e6:.0f}M parameters is over the auto limit of "
                      f"{FULL_AUTO_MAX_PARAMS / 1e6:.0f}M; set tracking.save_policy=full to keep it)")
    return "full", "full"


def log_policy(policy, cfg, run_id: str, step: int) -> str:
    """Log the policy to the active run as `policy/` (per `cfg.tracking.save_policy`); returns the tag set."""
    n_params = sum(p.numel() for p in policy.model.parameters())
    kind, tag = choose_kind(cfg.tracking.save_policy, policy.finetune, n_params)
    if kind is not None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_policy(policy, cfg, Path(tmp) / ARTIFACT_DIR, kind, run_id, step)
            mlflow.log_artifacts(str(folder), ARTIFACT_DIR)
    mlflow.set_tag(TAG, tag)
    return tag


def write_policy(policy, cfg, folder: Path, kind: str, run_id: str | None = None,
                 step: int | None = None) -> Path:
    """Write `kind` ("adapter" | "full") of the policy and its metadata into `folder`."""
    if kind == "adapter" and policy.finetune == "full":
        raise ValueError("save_policy 'adapter' needs a lora/qlora policy; this one is a full fine-tune")
    if kind == "full" and policy.finetune == "qlora":
        raise ValueError("save_policy 'full' is not supported for a qlora policy (4-bit base); keep the adapter")
    if kind == "full" and policy.finetune == "lora":
        _save_merged(policy, cfg.model.dtype, folder)
    else:
        policy.save(folder)
    meta = metadata(policy, cfg, kind, run_id, step)
    (folder / POLICY_METADATA).write_text(json.dumps(meta, indent=2))
    return folder


def metadata(policy, cfg, kind: str, run_id: str | None, step: int | None) -> dict[str, Any]:
    m = cfg.model
    return {
        "format": FORMAT, "kind": kind, "merged": kind == "full" and policy.finetune != "full",
        "base": m.name, "base_path": policy.base_path, "finetune": m.finetune, "dtype": m.dtype,
        "lora": {"lora_rank": m.lora_rank, "lora_alpha": m.lora_alpha, "lora_dropout": m.lora_dropout,
                 "target_modules": m.target_modules},
        "toy": dict(m.toy) if m.name == "toy:custom" else {},
        "config_hash": cfg.config_hash(), "run_id": run_id, "step": step,
    }


def _save_merged(policy, dtype: str, folder: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        policy.save(tmp)
        base = AutoModelForCausalLM.from_pretrained(policy.base_path, dtype=getattr(torch, dtype))
        merged = PeftModel.from_pretrained(base, tmp).merge_and_unload()
    merged.save_pretrained(folder)
    policy.tokenizer.save_pretrained(folder)


def load_stored(source: str, load_pretrained, load_state, finetune: str | None = None, dtype: str | None = None,
                device: str | None = None, gradient_checkpointing: bool = False, tracking_uri: str | None = None,
                **lora: Any) -> Any:
    """A trainable Policy from `runs:/<run_id>/policy` or a folder with studykit_policy.json. `load_pretrained` and
    `load_state` are studykit.policy.models' (passed in, so that this module, above models, is never imported by it back).

    Unset options take the recorded ones. An adapter keeps its recorded LoRA settings (a different one is an
    error) and loads as lora or qlora; full weights load as `finetune` (default full; lora/qlora adds a new adapter).
    """
    folder = local_folder(source, tracking_uri)
    meta = read_metadata(folder)
    common = dict(dtype=dtype or meta["dtype"], device=device, gradient_checkpointing=gradient_checkpointing)
    if meta["kind"] == "adapter":
        policy = _load_adapter(folder, meta, source, finetune, lora, common, load_pretrained)
        policy = load_state(policy, folder)
    else:
        given = {k: v for k, v in lora.items() if v is not None}
        policy = load_pretrained(str(folder), finetune=finetune or "full", **given, **common)
    policy.name = source
    return policy


def _load_adapter(folder: Path, meta: dict, source: str, finetune: str | None, lora: dict, common: dict,
                  load_pretrained):
    finetune = finetune or meta["finetune"]
    if finetune not in ("lora", "qlora"):
        raise ValueError(f"{source} holds a LoRA adapter; load it with finetune 'lora' or 'qlora' (it was trained "
                         f"as {meta['finetune']!r}), not {finetune!r}")
    recorded = meta["lora"]
    clash = {k: v for k, v in lora.items() if v is not None and v != recorded[k]}
    if clash:
        raise ValueError(f"{source} holds an adapter trained with {recorded}; {sorted(clash)} cannot differ")
    return load_pretrained(_base_source(meta), finetune=finetune, toy_knobs=meta.get("toy") or None,
                           **recorded, **common)


def _base_source(meta: dict) -> str:
    """The base as the config named it; the resolved folder when that name was a path that no longer resolves."""
    base, resolved = meta["base"], meta.get("base_path") or ""
    named_path = not base.startswith("toy:") and (base.startswith((".", "/", "~")) or Path(base).exists())
    if named_path and not Path(base).expanduser().is_dir() and Path(resolved).is_dir():
        return resolved
    return base


def read_metadata(folder: Path) -> dict[str, Any]:
    path = folder / POLICY_METADATA
    if not path.is_file():
        raise PolicyNotFound(f"{folder} holds no {POLICY_METADATA}; it is not a policy kept by a studykit run")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT or meta.get("kind") not in ("adapter", "full"):
        raise ValueError(f"{path}: unsupported stored policy (format {meta.get('format')}, kind {meta.get('kind')})")
    return meta


def local_folder(source: str, tracking_uri: str | None = None) -> Path:
    """The folder of a stored policy: the local path itself, or a `runs:/` artifact downloaded with mlflow."""
    if not source.startswith("runs:/"):
        return Path(source).expanduser()
    run_id, _, path = source[len("runs:/"):].strip("/").partition("/")
    path = path.strip("/") or ARTIFACT_DIR
    uri = resolve_uri(tracking_uri)
    from studykit.infra.store import client as store_client  # a process's first access to a store: under the store lock

    client = store_client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise PolicyNotFound(f"no MLflow run {run_id!r} in {uri} ({err.message})") from None
    if not client.list_artifacts(run_id, path):
        said = run.data.tags.get(TAG)
        why = (f"it kept none ({TAG}: {said})" if said else
               "it was trained with tracking.save_policy none or before studykit logged policies")
        raise PolicyNotFound(f"run {run_id} has no {path}/ artifact: {why}")
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/{path}", tracking_uri=uri))


def resolve_uri(explicit: str | None = None) -> str:
    """`explicit` > the URI mlflow is set to (set_tracking_uri or $MLFLOW_TRACKING_URI) > studykit's default."""
    if explicit:
        return explicit
    try:
        from mlflow.tracking._tracking_service.utils import is_tracking_uri_set
    except ImportError:  # private in mlflow; fall back to the environment
        is_tracking_uri_set = None
    if is_tracking_uri_set is not None and is_tracking_uri_set():
        return mlflow.get_tracking_uri()
    from studykit.infra.store import tracking_uri

    return tracking_uri()
