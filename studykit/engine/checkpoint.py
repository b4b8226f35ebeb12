"""Resumable checkpoints: weights or adapter, optimiser, scheduler, RNG states, data position, step, MLflow run id.

Written to a temporary folder and renamed into place, so an interrupted save never leaves a half checkpoint.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch


def folder(root: str, config_hash: str) -> Path:
    return Path(root) / config_hash


def save(path: Path, policy, optimizer, scheduler, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    policy.save(tmp / "policy")
    torch.save({
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()},
        **state,
    }, tmp / "state.pt")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def peek(path: Path) -> dict[str, Any] | None:
    """The saved step, run id and one-shot choice without restoring anything (None: no complete checkpoint)."""
    if not (path / "state.pt").is_file():
        return None
    state = torch.load(path / "state.pt", weights_only=False)
    return {"step": state["step"], "run_id": state.get("run_id"), "one_shot": state.get("one_shot")}


def load(path: Path, policy, optimizer, scheduler) -> dict[str, Any] | None:
    """Restore into the given objects; returns the saved state dict, or None when there is no complete checkpoint."""
    if not (path / "state.pt").is_file():
        return None
    from studykit.policy.models import load_state

    state = torch.load(path / "state.pt", weights_only=False)
    load_state(policy, path / "policy")
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    rng = state.pop("rng")
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    return state
