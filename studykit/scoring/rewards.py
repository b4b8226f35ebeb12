"""Reward conditions for GRPO, by name: each scores one group of completions for one problem.

`get(name, **options)` returns a `RewardFn`; calling it on `(completions, problem, logprobs=None, rng=None)`
gives a `RewardResult` with the training signal (`rewards`), the TRUE correctness of every completion
(`correct`, always computed so the real accuracy is logged whatever the signal), `format_ok`, and `extra`.

Conditions (arXiv 2508.21188 tests each claim; the sources are the papers that made the claims):

- `ground_truth`: 1 when the extracted answer is correct (RLVR; DeepSeek-R1 and the paper's recipe).
- `random`: Bernoulli(p) per completion, default p=0.5 (Shao et al. 2025, "Spurious Rewards"). Draws come
  from the call's `rng`, else from a generator seeded once by the `seed` option; never global state.
  One draw per completion is made whether or not it is gated, so the stream does not depend on format.
- `incorrect`: 1 for an extractable answer that is WRONG, 0 for a correct one or no answer (Spurious
  Rewards). Departure: that paper's released math code also paid correct answers; studykit does not.
- `format`: 1 when the completion has `<think>..</think>` then `<answer>..</answer>` (Spurious Rewards'
  format reward). It is its own gate: the `format_gate` option is accepted and has no effect.
- `majority_vote`: 1 for completions whose answer equals the group's most common extractable answer, the
  pseudo-label (TTRL, Zuo et al. 2025; the paper's released code did not implement it). Answers are
  normalised (strip, collapse whitespace); for math tasks they are further clustered with
  `verify.math_equal` against at most `max_clusters` cluster representatives, within `cluster_budget_s`
  seconds per group (default 10; beyond either bound, string equality).
  Ties go to the answer seen first. A group with no extractable answer pays nothing. Every extractable
  answer votes, formatted or not; gating only decides who is paid.
- `noisy_ground_truth`: ground truth through a noisy verifier: a correct completion is scored wrong with
  probability `false_negative`, a wrong one right with `false_positive` (defaults 0; "Pitfalls of Rule- and
  Model-based Verifiers", arXiv 2505.22203: rule-based verifiers' recall is 0.86 on average; One-shot RLVR,
  arXiv 2504.20571: "even 90% labels randomly flipped, the model can still get some improvement"). One uniform
  draw per completion, from the call's `rng` else from a generator seeded by `seed`, as `random` draws; the
  format gate then applies as for ground truth (an unformatted completion gets 0, flipped or not), so with the
  gate the rates are those of the formatted completions. Departure: the flips are independent per completion;
  a real verifier's misses cluster on answer forms it cannot parse.
- `self_certainty`: the completion's mean token log-prob, clipped to [-100, 0] per token (entropy
  minimisation: Agarwal et al. 2025, "The Unreasonable Effectiveness of Entropy Minimization"; RENT).
  Needs `logprobs` (one list per completion). An empty or zero-token completion scores the floor (-100): a
  mean over no tokens is not certainty, and 0 would be the best reward in its group.

Format gating (`format_gate=True`, the paper's recipe): a completion without the required format gets 0
instead of its signal (`ground_truth`, `noisy_ground_truth`, `random`, `incorrect`, `majority_vote`). For
`self_certainty` a 0 would be the HIGHEST possible log-prob reward, so a gated completion instead gets the lowest
signal in its group (never more than any completion there); this departs from "gated means 0" on purpose.

Verification: `ans = verify.extract_answer(text)`, then `task.verify(problem, ans)` with the task from
`studykit.tasks.get(problem.meta["task"])` (cached per name), or the `verify=` option
`(problem, answer) -> bool`. Hostile completions never raise: an extractor, format-check or verifier
exception counts as no answer / bad format / incorrect, and a non-string completion is read as "".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from studykit.tasks import Problem
from studykit.tasks import verifier as task_verifier

__all__ = ["RewardResult", "RewardFn", "get", "names", "normalize_answer", "MATH_TASKS"]

MATH_TASKS = frozenset({"math500", "aime24", "amc23", "math", "deepscaler"})
LOGPROB_FLOOR = -100.0
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class RewardResult:
    """Per-completion arrays for one group, plus group-level details in `extra`."""

    rewards: np.ndarray  # float64
    correct: np.ndarray  # bool: true correctness, whatever the signal
    format_ok: np.ndarray  # bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Group:
    texts: list[str]
    answers: list[str | None]
    correct: np.ndarray
    format_ok: np.ndarray
    problem: Problem
    logprobs: Sequence[Sequence[float]] | None
    rng: np.random.Generator | None


def _verify_module():
    from studykit.scoring import verify  # imported lazily: verify.py is optional until it lands

    return verify


def normalize_answer(answer: str | None) -> str | None:
    """Strip and collapse whitespace; empty or None -> None."""
    if answer is None:
        return None
    text = _WS.sub(" ", answer).strip()
    return text or None


def _safe_extract(text: str) -> str | None:
    try:
        ans = _verify_module().extract_answer(text)
    except Exception:
        return None
    return ans if isinstance(ans, str) else None


def _safe_format(text: str) -> bool:
    try:
        return bool(_verify_module().format_ok(text))
    except Exception:
        return False


@lru_cache(maxsize=None)
def _task_verify(name: str):
    return task_verifier(name)


def _task_verifier(problem: Problem) -> Callable[[Problem, str | None], bool]:
    name = problem.meta.get("task") if isinstance(problem.meta, dict) else None
    if not name:
        raise ValueError(
            f"problem {problem.id!r}: meta['task'] is missing; it names the task whose verifier decides "
            "correctness (or pass verify=callable to rewards.get)"
        )
    return _task_verify(name)


class RewardFn:
    """Base class: verification, format checks and gating; subclasses define `_signal`."""

    name: ClassVar[str] = ""
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        allowed = ("format_gate", "verify", *self.option_names)
        for key in options:
            if key not in allowed:
                raise TypeError(f"reward {self.name!r} got unknown option {key!r}; allowed options: {', '.join(allowed)}")
        gate = options.pop("format_gate", True)
        if not isinstance(gate, bool):
            raise TypeError(f"reward option 'format_gate' must be a bool, got {gate!r}")
        verify = options.pop("verify", None)
        if verify is not None and not callable(verify):
            raise TypeError(f"reward option 'verify' must be callable (problem, answer) -> bool, got {verify!r}")
        self.format_gate = gate
        self._verify = verify
        self._configure(**options)

    def _configure(self, **options: Any) -> None:
        """Subclasses with options validate and store them here."""

    def __repr__(self) -> str:
        return f"rewards.get({self.name!r}, format_gate={self.format_gate})"

    def __call__(
        self,
        completions: Sequence[str],
        problem: Problem,
        logprobs: Sequence[Sequence[float]] | None = None,
        rng: np.random.Generator | None = None,
    ) -> RewardResult:
        texts = [c if isinstance(c, str) else "" for c in completions]
        answers = [_safe_extract(t) for t in texts]
        verifier = self._verify or _task_verifier(problem)
        correct = np.array([self._is_correct(verifier, problem, a) for a in answers], dtype=bool)
        fmt = np.array([_safe_format(t) for t in texts], dtype=bool)
        group = _Group(texts, answers, correct, fmt, problem, logprobs, rng)
        signal, extra = self._signal(group)
        signal = np.asarray(signal, dtype=np.float64)
        rewards = self._gate(signal, fmt) if self.format_gate else signal
        extra = {"n_answers": sum(a is not None for a in answers), **extra}
        return RewardResult(rewards.astype(np.float64), correct, fmt, extra)

    @staticmethod
    def _is_correct(verifier: Callable, problem: Problem, answer: str | None) -> bool:
        try:
            return bool(verifier(problem, answer))
        except Exception:
            return False

    def _gate(self, signal: np.ndarray, fmt: np.ndarray) -> np.ndarray:
        return np.where(fmt, signal, 0.0)

    def _signal(self, group: _Group) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError


class GroundTruth(RewardFn):
    name = "ground_truth"

    def _signal(self, group: _Group):
        return group.correct.astype(np.float64), {}


class RandomReward(RewardFn):
    name = "random"
    option_names = ("p", "seed")

    def _configure(self, p: float = 0.5, seed: int | None = None) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise TypeError(f"reward option 'p' must be a number in [0, 1], got {p!r}")
        _check_seed(seed)
        self.p = float(p)
        self._rng = None if seed is None else np.random.default_rng(int(seed))

    def _signal(self, group: _Group):
        rng = group.rng if group.rng is not None else self._rng
        if rng is None:
            raise ValueError("reward 'random' needs a generator: pass rng= to the call or seed= to rewards.get")
        draws = rng.random(len(group.texts)) < self.p
        return draws.astype(np.float64), {"p": self.p}


def _check_seed(seed: Any) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"reward option 'seed' must be an int or None, got {seed!r}")


def _check_probability(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise TypeError(f"reward option {key!r} must be a number in [0, 1], got {value!r}")
    return float(value)


class NoisyGroundTruth(RewardFn):
    name = "noisy_ground_truth"
    option_names = ("false_negative", "false_positive", "seed")

    def _configure(self, false_negative: float = 0.0, false_positive: float = 0.0, seed: int | None = None) -> None:
        self.false_negative = _check_probability("false_negative", false_negative)
        self.false_positive = _check_probability("false_positive", false_positive)
        _check_seed(seed)
        self._rng = None if seed is None else np.random.default_rng(int(seed))

    def _signal(self, group: _Group):
        rng = group.rng if group.rng is not None else self._rng
        if rng is None:
            raise ValueError("reward 'noisy_ground_truth' needs a generator: pass rng= to the call or seed= to "
                             "rewards.get")
        u = rng.random(len(group.texts))  # one draw per completion, whatever its correctness or format
        flip = np.where(group.correct, u < self.false_negative, u < self.false_positive)
        return (group.correct ^ flip).astype(np.float64), {"flipped": int(flip.sum())}


class IncorrectReward(RewardFn):
    name = "incorrect"

    def _signal(self, group: _Group):
        has_answer = np.array([a is not None for a in group.answers], dtype=bool)
        return (has_answer & ~group.correct).astype(np.float64), {}


class FormatReward(RewardFn):
    name = "format"

    def _gate(self, signal: np.ndarray, fmt: np.ndarray) -> np.ndarray:
        return signal  # the signal is the format check itself

    def _signal(self, group: _Group):
        return group.format_ok.astype(np.float64), {}


class MajorityVote(RewardFn):
    name = "majority_vote"
    option_names = ("max_clusters", "cluster_budget_s")

    def _configure(self, max_clusters: int = 16, cluster_budget_s: float = 10.0) -> None:
        if isinstance(max_clusters, bool) or not isinstance(max_clusters, int) or max_clusters < 0:
            raise TypeError(f"reward option 'max_clusters' must be an int >= 0, got {max_clusters!r}")
        if isinstance(cluster_budget_s, bool) or not isinstance(cluster_budget_s, (int, float)) or cluster_budget_s < 0:
            raise TypeError(f"reward option 'cluster_budget_s' must be a number >= 0, got {cluster_budget_s!r}")
        self.max_clusters = max_clusters
        self.cluster_budget_s = float(cluster_budget_s)

    def _equal_fn(self, problem: Problem) -> Callable[[str, str], bool] | None:
        if self.max_clusters == 0 or problem.meta.get("task") not in MATH_TASKS:
            return None
        math_equal = _verify_module().math_equal
        deadline = time.monotonic() + self.cluster_budget_s

        def equal(a: str, b: str) -> bool:
            if time.monotonic() >= deadline:  # budget spent: string equality only from here on
                return False
            try:
                return bool(math_equal(a, b))
            except Exception:
                return False

        return equal

    def _cluster(self, answers: list[str | None], equal: Callable[[str, str], bool] | None) -> list[int | None]:
        """Cluster index per completion (None: no answer); clusters numbered by first appearance."""
        reps: list[str] = []
        labels: list[int | None] = []
        for ans in answers:
            if ans is None:
                labels.append(None)
                continue
            found = next((i for i, r in enumerate(reps) if r == ans), None)
            if found is None and equal is not None:
                found = next((i for i, r in enumerate(reps[: self.max_clusters]) if equal(ans, r)), None)
            if found is None:
                reps.append(ans)
                found = len(reps) - 1
            labels.append(found)
        return labels

    def _signal(self, group: _Group):
        answers = [normalize_answer(a) for a in group.answers]
        labels = self._cluster(answers, self._equal_fn(group.problem))
        valid = [lab for lab in labels if lab is not None]
        if not valid:
            return np.zeros(len(answers)), {"majority_answer": None, "majority_count": 0, "majority_correct": False}
        counts = np.bincount(valid)
        winner = int(np.argmax(counts))  # clusters are numbered by first appearance: ties go to the first
        paid = np.array([lab == winner for lab in labels], dtype=bool)
        extra = {
            "majority_answer": answers[labels.index(winner)],
            "majority_count": int(counts[winner]),
            "majority_correct": bool(group.correct[paid].any()),
            "n_clusters": int(counts.size),
        }
        return paid.astype(np.float64), extra


class SelfCertainty(RewardFn):
    name = "self_certainty"

    def _gate(self, signal: np.ndarray, fmt: np.ndarray) -> np.ndarray:
        if signal.size == 0:
            return signal
        return np.where(fmt, signal, signal.min())

    def _signal(self, group: _Group):
        lp = group.logprobs
        if lp is None:
            raise ValueError(
                "reward 'self_certainty' needs logprobs: the sampler must return per-token log-probs "
                "(one list per completion)"
            )
        if len(lp) != len(group.texts):
            raise ValueError(f"reward 'self_certainty': got {len(lp)} logprob lists for {len(group.texts)} completions")
        means = []
        for text, row in zip(group.texts, lp):
            arr = np.asarray(row, dtype=np.float64).ravel()
            if arr.size == 0 or not text:  # nothing generated: the worst signal, never the best
                means.append(LOGPROB_FLOOR)
                continue
            arr = np.clip(np.nan_to_num(arr, nan=LOGPROB_FLOOR, neginf=LOGPROB_FLOOR), LOGPROB_FLOOR, 0.0)
            means.append(float(arr.mean()))
        return np.array(means), {}


_REGISTRY: dict[str, type[RewardFn]] = {
    cls.name: cls for cls in (GroundTruth, RandomReward, IncorrectReward, FormatReward, MajorityVote, SelfCertainty,
                              NoisyGroundTruth)
}


def names() -> list[str]:
    """Reward condition names that `get` accepts."""
    return list(_REGISTRY)


def get(name: str, **options: Any) -> RewardFn:
    """The reward condition `name`; options: `format_gate`, `verify`, and per condition (see module doc)."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; allowed names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**options)
