"""The advantage estimators verl 0.9.1 lacks, registered in its registry (`core_algos.register_adv_est`).

Imported only inside a verl environment: the launch script sets `VERL_USE_EXTERNAL_MODULES` to this module, which
verl's own `__init__` imports in every process (the driver and each Ray actor, whose runtime env carries the
variable), so `algorithm.adv_estimator=studykit_nsr` (and the others in verl_translate.CUSTOM_ESTIMATORS) resolves.
Each estimator groups the batch by verl's prompt uid and applies studykit's own `grpo.compute_advantages` to every
group, so the values are studykit's. W-REINFORCE's lambda comes from $STUDYKIT_W_REINFORCE_LAM (default 0.1,
Zhu et al. 2025): verl's `algorithm.lam` is GAE's lambda, another quantity.

An estimator plug-in (issue 22) is registered as `verl_plugins.PLUGIN_ESTIMATOR` when the environment names one
(`verl_plugins.ENV`: import path, base64 JSON options, identity; set by the launch script and the Ray runtime env).
It is resolved on its first call, not at import (a process that never computes advantages need not import it), and
then once per process; a module that cannot be imported, or whose source hash is not the exported one, raises
PluginError naming it.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch

from studykit.engine.grpo import compute_advantages
from functools import lru_cache

from studykit.config.schema import ESTIMATORS
from .verl import decode_options, load_plugin
from .verl_plugins import ENV, PLUGIN_ESTIMATOR
from .verl_translate import CUSTOM_ESTIMATORS, LAM_ENV


def group_advantages(scores: torch.Tensor, index, estimator, eps: float = 1e-6, lam: float = 0.1) -> torch.Tensor:
    """Advantages [B] for sequence scores [B] whose group (prompt uid) is `index[i]`; `estimator` is a shipped
    name or a built plug-in (grpo.make_estimator)."""
    if index is None:
        raise ValueError(f"estimator {estimator!r} needs the prompt uid of every sample (verl's `index`)")
    rows: dict = defaultdict(list)
    for i, uid in enumerate(index):
        rows[uid].append(i)
    adv = torch.zeros_like(scores, dtype=torch.float32)
    for members in rows.values():
        r = scores[members].float().unsqueeze(0)
        adv[members] = compute_advantages(r, estimator, eps=eps, lam=lam).squeeze(0)
    return adv


def _verl_estimator(estimator: str):
    def estimate(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index=None, epsilon: float = 1e-6,
                 config=None, **_unused):
        lam = float(os.environ.get(LAM_ENV, "0.1"))
        adv = group_advantages(token_level_rewards.sum(dim=-1), index, estimator, epsilon, lam)
        adv = adv.to(token_level_rewards.dtype).unsqueeze(-1) * response_mask
        return adv, adv

    estimate.__name__ = f"studykit_{estimator}_advantage"
    return estimate


@lru_cache(maxsize=1)
def plugin_from_env():
    """The estimator plug-in the environment names, built once per process (grpo.make_estimator's PluginEstimator)."""
    from studykit.scoring import plugins

    target = os.environ.get(ENV["target"])
    if not target:
        raise ValueError(f"algorithm.adv_estimator={PLUGIN_ESTIMATOR} needs ${ENV['target']} (set by the launch script "
                         "of `studykit export verl`, and in the Ray runtime env)")
    plugin = load_plugin("estimator", target, os.environ.get(ENV["identity"], ""), ESTIMATORS)
    return plugins.PluginEstimator(plugin, decode_options(os.environ.get(ENV["options"], "")))


def plugin_estimate(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index=None,
                    epsilon: float = 1e-6, config=None, **_unused):
    """verl's estimator interface around the plug-in: per prompt group (uid) on the summed token rewards."""
    adv = group_advantages(token_level_rewards.sum(dim=-1), index, plugin_from_env(), epsilon)
    adv = adv.to(token_level_rewards.dtype).unsqueeze(-1) * response_mask
    return adv, adv


def register() -> list[str]:
    """Register every studykit estimator that verl lacks, and the plug-in when the environment names one
    (idempotent); the names registered."""
    from verl.trainer.ppo import core_algos

    names = dict(CUSTOM_ESTIMATORS)
    for estimator, name in CUSTOM_ESTIMATORS.items():
        if name not in core_algos.ADV_ESTIMATOR_REGISTRY:
            core_algos.register_adv_est(name)(_verl_estimator(estimator))
    if os.environ.get(ENV["target"]):
        names["plugin"] = PLUGIN_ESTIMATOR
        if PLUGIN_ESTIMATOR not in core_algos.ADV_ESTIMATOR_REGISTRY:
            core_algos.register_adv_est(PLUGIN_ESTIMATOR)(plugin_estimate)
    return list(names.values())


try:
    import verl  # noqa: F401
except ImportError:  # outside a verl environment there is no registry; `group_advantages` is still usable
    pass
else:
    register()
