"""An advantage estimator: the sign of each reward's distance from its group's mean (+1, 0 or -1)."""

from __future__ import annotations

import numpy as np


def centred_sign(rewards: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """`scale * sign(r - mean(r))` within one group: only the ranking against the group mean counts."""
    return scale * np.sign(rewards - rewards.mean())
