"""The advantage estimators verl 0.9.1 lacks, registered in its registry (`core_algos.register_adv_est`).

Imported only inside a verl environment: the launch script sets `VERL_USE_EXTERNAL_MODULES` to this module, which
verl's own `__init__` imports in every process (the driver and each Ray actor, whose runtime env carries the
variable), so `algorithm.adv_estimator=studykit_nsr` (and the others in verl_translate.CUSTOM_ESTIMATORS) resolves.
Each estimator groups the batch by verl's prompt uid and applies studykit's own `grpo.compute_advantages` to every
group, so the values are studykit's. W-REINFORCE's lambda comes from $STUDYKIT_W_REINFORCE_LAM (default 0.1,
Zhu et al. 2025): verl's `algorithm.lam` is GAE's lambda, another quantity.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch

from studykit.engine.grpo import compute_advantages
from .verl_translate import CUSTOM_ESTIMATORS, LAM_ENV


def group_advantages(scores: torch.Tensor, index, estimator: str, eps: float = 1e-6, lam: float = 0.1) -> torch.Tensor:
    """Advantages [B] for sequence scores [B] whose group (prompt uid) is `index[i]`."""
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


def register() -> list[str]:
    """Register every studykit estimator that verl lacks (idempotent); the names registered."""
    from verl.trainer.ppo import core_algos

    for estimator, name in CUSTOM_ESTIMATORS.items():
        if name not in core_algos.ADV_ESTIMATOR_REGISTRY:
            core_algos.register_adv_est(name)(_verl_estimator(estimator))
    return list(CUSTOM_ESTIMATORS.values())


try:
    import verl  # noqa: F401
except ImportError:  # outside a verl environment there is no registry; `group_advantages` is still usable
    pass
else:
    register()
