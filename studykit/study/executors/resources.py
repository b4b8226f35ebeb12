"""What one study cell asks a cluster scheduler for: CPUs, GPUs, memory and custom resources.

Pure (no Ray import), so the rule is tested apart from the executor. `cell_resources(params, override)`:
* `num_cpus` = the cell's `train.threads` (the torch threads its kernel uses; 1 for the compare step);
* `num_gpus` = 1 for a cell whose model runs on CUDA, 0 for a toy model: toy models are sized for a CPU core
  (`studykit.policy.models` would put any model on CUDA where the node has one, so a toy cell may still use a GPU it finds,
  without reserving it), every other model (a hub id, a local folder, a stored `runs:/` policy) needs the GPU;
* a study file's `resources:` block (`ResourcesSpec`) overrides each field it sets, for every cell.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

RAY_BUILTIN = ("CPU", "GPU", "memory", "object_store_memory")
"""Resources Ray sets from its own options (num_cpus, num_gpus, memory): refused as custom names."""


class ResourcesSpec(BaseModel):
    """A study file's `resources:` block: what each cell reserves on a Ray cluster (`--executor ray`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    num_cpus: float | None = Field(None, gt=0)
    """CPUs per cell; None = the cell's `train.threads`."""
    num_gpus: float | None = Field(None, ge=0)
    """GPUs per cell (fractions share a GPU); None = 1 for a non-toy model, 0 for a `toy:` model."""
    memory_gb: float | None = Field(None, gt=0)
    """Memory Ray reserves per cell, in GiB (scheduling only: Ray does not cap the process); None = no reservation."""
    custom: dict[str, float] = Field(default_factory=dict)
    """Custom Ray resources per cell, e.g. `{A100: 1}` for nodes started with `--resources '{"A100": 4}'`."""

    @field_validator("custom")
    @classmethod
    def _custom_names_and_amounts(cls, custom: dict[str, float]) -> dict[str, float]:
        """Checked here, with the field named, rather than by Ray once a cell has started (its rules:
        ray._common.ray_option_utils._validate_resources)."""
        for name, amount in custom.items():
            if not name.strip():
                raise ValueError(f"custom resource names must be non-empty; got {name!r}")
            if name in RAY_BUILTIN:
                raise ValueError(f"{name!r} is set by num_cpus / num_gpus / memory_gb, not as a custom resource")
            if amount < 0:
                raise ValueError(f"{name!r}: expected an amount >= 0, got {amount:g}")
            if amount and int(amount * 10_000) == 0:
                raise ValueError(f"{name!r}: Ray counts resources in steps of 0.0001; got {amount:g}")
        return custom


def needs_gpu(params: dict[str, Any]) -> bool:
    """Whether the cell's model runs on CUDA: every model but the CPU-sized `toy:` ones."""
    name = str((params.get("model") or {}).get("name") or "")
    return bool(name) and not name.startswith("toy:")


def cell_resources(params: dict[str, Any], override: ResourcesSpec | None = None) -> dict[str, Any]:
    """Ray task options (`num_cpus`, `num_gpus`, and `memory`/`resources` when set) for one cell's parameters."""
    threads = (params.get("train") or {}).get("threads") or 1
    out: dict[str, Any] = {"num_cpus": float(threads), "num_gpus": 1.0 if needs_gpu(params) else 0.0}
    if override is None:
        return out
    if override.num_cpus is not None:
        out["num_cpus"] = override.num_cpus
    if override.num_gpus is not None:
        out["num_gpus"] = override.num_gpus
    if override.memory_gb is not None:
        out["memory"] = int(override.memory_gb * 2**30)
    if override.custom:
        out["resources"] = dict(override.custom)
    return out
