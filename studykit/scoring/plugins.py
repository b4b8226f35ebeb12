"""Reward and advantage-estimator plug-ins: their interfaces, the checks, and how studykit calls them.

A config names a plug-in where it names a shipped condition: `reward.name: my_claim.rewards:short_answer` or an
installed entry point's bare name (`short_answer`), `algo.estimator: my_claim.estimators:centred_sign`
(studykit.infra.plugins resolves the name and gives its identity). Options come from `reward.options` /
`algo.estimator_options` and are passed as keyword arguments; when the plug-in has an `Options` attribute that is
a pydantic model they are validated by it (its fields, defaults filled in, are what the plug-in gets), else by the
plug-in's signature (studykit.config.validation.check_kwargs: names and annotated types).

Reward:
    def reward(completions: list[str], problem: Problem, verify, rng: numpy.random.Generator, **options)
        -> one finite float per completion (list or 1-D array)
  `completions` is one group (the samples of one prompt; a non-string completion arrives as ""), `problem` the
  studykit.tasks.Problem, `verify(problem, answer_text) -> bool` the task's verifier (an exception in it counts as
  False), `rng` the run's seeded generator (draw from it, never from global state). Extract answers with
  `extract_answer` below (bounded: it reads at most the last verify.MAX_TEXT_CHARS characters, never raises).
  studykit computes the TRUE correctness (logged as accuracy) and the format check itself, and applies
  `reward.format_gate` as for the shipped conditions (an unformatted completion gets 0).
  Completions are untrusted: in the main thread each call runs under a deadline of `TIME_LIMIT_S` seconds (the
  signal-based deadline the math verifier uses); a group whose call runs out of time gets 0 rewards (as a math
  check past its deadline counts as wrong) and `extra["plugin_timeout"] = True`. Elsewhere (another thread) no
  deadline can be armed. A plug-in that raises, or returns the wrong number of values or a non-finite one, raises
  PluginError naming it, which fails the run.

Estimator:
    def estimator(rewards: numpy.ndarray, **options) -> numpy array of advantages, the same shape
  called once per group with that group's training rewards (1-D float64, a copy), as the shipped estimators read
  the training reward only. `estimator(name, options, shipped)` resolves it and checks its options once (the
  trainer builds one `PluginEstimator` per run); `advantages` is the one-shot form.

Per completion (for `studykit export verl`, which calls a reward once per completion): a reward plug-in whose value
for a completion does not depend on the other completions of its group says so with `fn.per_completion = True`
(`is_per_completion`); verl then calls it with a group of one. Without it the export refuses the reward. Dynamic sampling stays on by default (algo.dynamic_sampling): groups whose rewards all
  agree are dropped unless the config turns it off.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from studykit.infra.plugins import Plugin, PluginError, lookup
from studykit.scoring import rewards, verify as _verify
from studykit.tasks import Problem

__all__ = ["INTERFACES", "PluginError", "PluginEstimator", "PluginReward", "TIME_LIMIT_S", "extract_answer", "load",
           "call_options", "reward", "estimator", "advantages", "is_per_completion"]

log = logging.getLogger(__name__)

TIME_LIMIT_S = 10.0  # per call of a reward plug-in on one group
# How many leading positional arguments studykit passes, and the interface in words (for errors).
INTERFACES = {
    "reward": (4, "reward(completions, problem, verify, rng, **options) -> one float per completion"),
    "estimator": (1, "estimator(rewards, **options) -> advantages of the same shape"),
}


def extract_answer(text: str) -> str | None:
    """The answer of a completion (`<answer>` block, else the last `\\boxed{}`), or None; bounded and never raises."""
    return rewards._safe_extract(text if isinstance(text, str) else "")


def load(kind: str, name: str, shipped: Sequence[str]) -> Plugin:
    """The plug-in `name` of `kind`, checked against its interface (callable, takes the positional arguments)."""
    plugin = lookup(kind, name, tuple(shipped))
    n, interface = INTERFACES[kind]
    if not callable(plugin.obj) or isinstance(plugin.obj, type):
        raise PluginError(f"{plugin} is {type(plugin.obj).__name__} {plugin.obj!r}; expected a function {interface}")
    try:
        sig = inspect.signature(plugin.obj)
        sig.bind(*([None] * n))
    except (TypeError, ValueError) as err:
        shown = sig if "sig" in locals() else "?"
        raise PluginError(f"{plugin} has signature {shown} ({err}); expected {interface}") from None
    options_model = getattr(plugin.obj, "Options", None)
    if options_model is not None and not (isinstance(options_model, type) and issubclass(options_model, BaseModel)):
        raise PluginError(f"{plugin}: its Options attribute is {options_model!r}; expected a pydantic BaseModel "
                          "subclass (or no Options: the signature checks the options)")
    return plugin


def call_options(plugin: Plugin, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments the plug-in gets: `options` validated by its `Options` model when it has one (defaults
    filled in), else as given (studykit.config.validation checks them against the signature)."""
    model = getattr(plugin.obj, "Options", None)
    if model is None:
        return dict(options)
    try:
        return dict(model.model_validate(options))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"])) or "options"
        raise PluginError(f"{plugin}: option {where!r}: got {first.get('input')!r}; {first['msg']} "
                          f"({model.__name__})") from None


class PluginReward(rewards.RewardFn):
    """A reward plug-in inside studykit's verification, format check and gating (studykit.scoring.rewards)."""

    def __init__(self, plugin: Plugin, format_gate: bool = True, verify: Callable | None = None,
                 **options: Any) -> None:
        self.plugin, self.name = plugin, plugin.name
        self._options = call_options(plugin, options)
        super().__init__(format_gate=format_gate, verify=verify)

    def __repr__(self) -> str:
        return f"PluginReward({self.plugin.identity!r}, format_gate={self.format_gate})"

    @property
    def options(self) -> dict[str, Any]:
        """The keyword options the plug-in gets (its `Options` model's defaults filled in)."""
        return dict(self._options)

    def _signal(self, group: rewards._Group):
        if group.rng is None:
            raise ValueError(f"{self.plugin} needs a generator: pass rng= to the call")
        verifier = self._verify or rewards._task_verifier(group.problem)

        def checked(problem: Problem, answer: str | None) -> bool:
            return self._is_correct(verifier, problem, answer)

        try:
            with _deadline():
                out = self.plugin.obj(list(group.texts), group.problem, checked, group.rng, **self._options)
        except _verify._Deadline:
            log.warning("%s ran out of its %.1f s on problem %r: the group gets 0", self.plugin, TIME_LIMIT_S,
                        group.problem.id)
            return np.zeros(len(group.texts)), {"plugin_timeout": True}
        except Exception as err:  # noqa: BLE001 - the user's code: name it in the run's failure
            raise PluginError(f"{self.plugin} [{self.plugin.identity}] raised {type(err).__name__}: {err} "
                              f"(problem {group.problem.id!r})") from err
        return _checked_array(out, len(group.texts), self.plugin, "rewards"), {}


def _deadline():
    """The math verifier's signal deadline, in the main thread only (signals reach no other thread)."""
    if threading.current_thread() is threading.main_thread():
        return _verify._signal_deadline(TIME_LIMIT_S)
    from contextlib import nullcontext

    return nullcontext()


def _checked_array(out: Any, n: int, plugin: Plugin, what: str) -> np.ndarray:
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise PluginError(f"{plugin} returned {type(out).__name__}; expected {n} numbers ({what})") from None
    if arr.shape != (n,):
        raise PluginError(f"{plugin} returned shape {arr.shape}; expected {n} {what} (one per completion)")
    if not np.isfinite(arr).all():
        raise PluginError(f"{plugin} returned non-finite {what} {arr.tolist()}; expected finite numbers")
    return arr


def reward(name: str, **options: Any) -> rewards.RewardFn:
    """A shipped reward condition (rewards.get) or the reward plug-in `name` with its options, `format_gate` and
    `verify` as rewards.get takes them."""
    if name in rewards.names():
        return rewards.get(name, **options)
    gate, verify = options.pop("format_gate", True), options.pop("verify", None)
    return PluginReward(load("reward", name, rewards.names()), gate, verify, **options)


def is_per_completion(plugin: Plugin) -> bool:
    """The reward plug-in declares that each completion's reward ignores the rest of its group."""
    return getattr(plugin.obj, "per_completion", False) is True


class PluginEstimator:
    """An estimator plug-in resolved and its options checked once: call it on rewards [G, N] for advantages [G, N]."""

    def __init__(self, plugin: Plugin, options: dict[str, Any]) -> None:
        self.plugin, self.name = plugin, plugin.name
        self._options = call_options(plugin, options)

    def __repr__(self) -> str:
        return f"PluginEstimator({self.plugin.identity!r})"

    def __call__(self, group_rewards: np.ndarray) -> np.ndarray:
        rows = []
        for row in np.asarray(group_rewards, dtype=np.float64):
            try:
                out = self.plugin.obj(row.copy(), **self._options)
            except Exception as err:  # noqa: BLE001 - the user's code: name it in the run's failure
                raise PluginError(f"{self.plugin} [{self.plugin.identity}] raised {type(err).__name__}: {err}") from err
            rows.append(_checked_array(out, row.size, self.plugin, "advantages"))
        return np.stack(rows) if rows else np.zeros_like(group_rewards, dtype=np.float64)


def estimator(name: str, options: dict[str, Any], shipped: Sequence[str]) -> PluginEstimator:
    """The estimator plug-in `name` with its options, ready to call per step."""
    return PluginEstimator(load("estimator", name, shipped), options)


def advantages(name: str, group_rewards: np.ndarray, options: dict[str, Any], shipped: Sequence[str]) -> np.ndarray:
    """Advantages [G, N] of the estimator plug-in `name`, called on each group's row of `group_rewards`."""
    return estimator(name, options, shipped)(group_rewards)
