"""Resumable checkpoints: weights or adapter, optimiser, scheduler, RNG states, data position, step, MLflow run id.

Written to a temporary folder and renamed into place, so an interrupted save never leaves a half checkpoint.

Loading a checkpoint executes nothing (checkpoints may sit on storage others can write): tensors go to
`state.safetensors`, everything else (step, RNG states, optimiser scalars, data position) to `state.json`, whose
only non-JSON values are tagged tuples, numpy arrays/scalars and references to the tensors. Pickle (`state.pt`,
written by older versions) is never opened: such a checkpoint is refused with a message saying how to go on.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE = "state.json"
TENSORS = "state.safetensors"
LEGACY = "state.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely or is malformed; the message names the file."""


def folder(root: str, config_hash: str) -> Path:
    return Path(root) / config_hash


def save(path: Path, policy, optimizer, scheduler, state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save(tmp / "policy")
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode({
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        **state,
    }, tensors, "state")
    save_file(tensors, str(tmp / TENSORS))
    (tmp / STATE).write_text(json.dumps(encoded))
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def peek(path: Path) -> dict[str, Any] | None:
    """The saved step, run id and one-shot choice without restoring anything (None: no complete checkpoint)."""
    state = _read(path, tensors=False)
    if state is None:
        return None
    return {"step": state["step"], "run_id": state.get("run_id"), "one_shot": state.get("one_shot")}


def load(path: Path, policy, optimizer, scheduler) -> dict[str, Any] | None:
    """Restore into the given objects; returns the saved state dict, or None when there is no complete checkpoint."""
    state = _read(path, tensors=True)
    if state is None:
        return None
    from studykit.policy.models import load_state

    load_state(policy, path / "policy")
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    rng = state.pop("rng")
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    return state


def _read(path: Path, tensors: bool) -> dict[str, Any] | None:
    if not (path / STATE).is_file():
        if (path / LEGACY).is_file():
            raise CheckpointError(
                f"{path / LEGACY} is a pickle checkpoint (written by an older studykit); loading pickle can run code, "
                f"so it is not opened. Delete the folder {path} to start this run anew, or run with "
                "tracking.resume=false (the next checkpoint replaces it)")
        return None
    try:
        raw = json.loads((path / STATE).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path / STATE} is not a readable checkpoint state: {err}") from err
    loaded: dict[str, torch.Tensor] = {}
    if tensors:
        from safetensors.torch import load_file

        try:
            loaded = load_file(str(path / TENSORS))
        except Exception as err:  # safetensors raises its own error types for a truncated or foreign file
            raise CheckpointError(f"{path / TENSORS} is not a readable safetensors file: {err}") from err
    try:
        state = _decode(raw, loaded, tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path / STATE} is malformed: {err}") from err
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path / STATE} is malformed: expected an object with an integer 'step'")
    return state


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON for `obj`; tensors are moved to `tensors` and referenced by name. Tags are one-key objects whose key
    starts with '__', so a plain dict with such a key (or a non-string key) is written as an item list."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": [obj.dtype.str, list(obj.shape), obj.ravel().tolist()]}
    if isinstance(obj, np.generic):
        return {"__npscalar__": [obj.dtype.str, obj.item()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint value {where} of type {type(obj).__name__} cannot be stored without pickle")


def _decode(obj: Any, tensors: dict[str, torch.Tensor], with_tensors: bool) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, with_tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "__tensor__":
            return tensors[value] if with_tensors else None  # peek reads no tensors
        if tag == "__ndarray__":
            dtype, shape, flat = value
            return np.asarray(flat, dtype=np.dtype(dtype)).reshape(shape)
        if tag == "__npscalar__":
            return np.dtype(value[0]).type(value[1])
        if tag == "__tuple__":
            return tuple(_decode(v, tensors, with_tensors) for v in value)
        if tag == "__items__":
            return {_decode(k, tensors, with_tensors): _decode(v, tensors, with_tensors) for k, v in value}
    return {k: _decode(v, tensors, with_tensors) for k, v in obj.items()}
