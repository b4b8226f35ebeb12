"""Which training prompts each step sees: the full pool in shuffled epochs, or one example repeated (RQ2).

One-shot rules (1-shot RLVR, Wang et al. 2025): `historical_variance` ranks examples by the variance of their
per-epoch training accuracy in an earlier full-data run (read from that run's `example_accuracy.json` artifact,
which every full-data run writes); `base_variance` ranks by p(1-p) of the base model's accuracy over n samples,
a cheap proxy that needs no earlier run; `random`; `index`. The chosen example is duplicated to fill the batch,
as in 1-shot RLVR.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np

from studykit.tasks import Problem


@dataclass
class Choice:
    index: int
    score: float
    rule: str
    source_run: str | None = None  # the run whose history ranked the examples (historical_variance)


class EpochSampler:
    """Shuffled passes over the pool; `state()`/`load()` make the order resumable."""

    def __init__(self, pool: list[Problem], seed: int):
        self.pool, self.seed, self.epoch, self.pos = pool, seed, 0, 0
        self.drawn_epoch: dict[str, int] = {}  # problem id -> the epoch it was last drawn in
        self._order = self._shuffle()

    def _shuffle(self) -> list[int]:
        order = list(range(len(self.pool)))
        random.Random(self.seed * 100_003 + self.epoch).shuffle(order)
        return order

    def next(self, k: int) -> list[Problem]:
        out = []
        while len(out) < k:
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._shuffle()
            problem = self.pool[self._order[self.pos]]
            self.drawn_epoch[problem.id] = self.epoch
            out.append(problem)
            self.pos += 1
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._shuffle()


class OneShotSampler:
    def __init__(self, example: Problem):
        self.example, self.drawn_epoch = example, {}

    def next(self, k: int) -> list[Problem]:
        return [self.example] * k

    def state(self) -> dict:
        return {}

    def load(self, state: dict) -> None:
        pass


def historical_variance(history: dict[str, list[float]], pool: list[Problem]) -> Choice:
    """The pool example whose per-epoch accuracy varied most in the earlier run (ties: lowest index)."""
    scores = [float(np.var(history[p.id])) if len(history.get(p.id, [])) > 1 else -1.0 for p in pool]
    best = int(np.argmax(scores))
    if scores[best] < 0:
        raise ValueError("historical_variance: the source run's example_accuracy.json has no example seen in two epochs; "
                         "train the full-data run longer or use one_shot.rule=base_variance")
    return Choice(best, scores[best], "historical_variance")


def base_variance(correct_counts: np.ndarray, n: int) -> Choice:
    p = correct_counts / n
    scores = p * (1 - p)
    best = int(np.argmax(scores))
    return Choice(best, float(scores[best]), "base_variance")


def load_history(path: str) -> dict[str, list[float]]:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping problem id -> per-epoch accuracies")
    return data
