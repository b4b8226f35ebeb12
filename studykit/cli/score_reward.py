"""`studykit score --reward NAME`: a training reward over the completions of a file, as a run would pay them.

NAME is a shipped reward condition (studykit.scoring.rewards) or a reward plug-in (an import path
`package.module:function` or an installed `studykit.rewards` entry point; studykit.scoring.plugins). Its options come
from `--reward-option KEY=VALUE` (repeatable; VALUE is read as a YAML scalar, so `40` is an int, `true` a bool,
`'40'` a string) and, with `--reward-format-gate`/`--no-reward-format-gate` and `--reward-p`, are validated exactly as
a params file's `reward` section is (studykit.config.schema.validate): a plug-in is imported and checked against its
interface, its options by its `Options` model or signature, before any completion is read.

The reward is built as the trainer builds it (`plugins.reward` with the task's verifier), so a plug-in runs inside
the same bounded wrapper (PluginReward: the signal deadline of `plugins.TIME_LIMIT_S` per group, bounded answer
extraction, finite values checked). The deadline is armed only in the main thread, so unlike the correctness checks
(parallel threads) the reward pass runs in the main thread, problem by problem in file order, inside the file's
verifier budget. All completions of one problem are one group; the generator is `numpy.random.default_rng(seed)`
(`--reward-seed`, default 0 as `train.seed`), drawn from in file order. `self_certainty` is refused: it needs the
token log-probs a completions file does not carry. Not in the paper: a convenience for checking a reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml

from studykit.config.schema import ConfigError, validate
from studykit.scoring import plugins, verify

__all__ = ["RewardSpec", "RewardScore", "parse_options", "build", "score_groups"]

NEEDS_LOGPROBS = ("self_certainty",)


@dataclass
class RewardSpec:
    """A validated reward for `score`: what it is, its identity (plug-ins), and the callable."""

    name: str
    options: dict[str, Any]  # what the reward gets: a plug-in's Options model fills in its defaults
    format_gate: bool
    seed: int
    identity: str | None
    fn: Any = field(repr=False)


@dataclass
class RewardScore:
    """Per problem id: the mean reward of its completions; groups whose plug-in call ran out of time."""

    means: dict[str, float]
    timeouts: list[str]


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """{key: value} from `KEY=VALUE` strings (VALUE as a YAML scalar); ValueError naming the bad one."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--reward-option: got {pair!r}; expected KEY=VALUE with KEY a Python identifier")
        if key in out:
            raise ValueError(f"--reward-option: {key!r} given twice; expected each option once")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ValueError(f"--reward-option {key}: got {raw!r}; not a YAML scalar ({err})") from None
        if isinstance(value, (dict, list)):
            raise ValueError(f"--reward-option {key}: got {raw!r}; expected a scalar (number, bool or string)")
        out[key] = value
    return out


def build(name: str, options: dict[str, Any], format_gate: bool, p: float | None, seed: int, task) -> RewardSpec:
    """The reward `name` validated as a params file's `reward` section, with `task`'s verifier; ValueError (naming
    the flag, the plug-in and what was expected) before anything is scored."""
    if name in NEEDS_LOGPROBS:
        raise ValueError(f"--reward {name!r}: needs the completions' token log-probs, which a completions file does "
                         "not carry; expected another reward")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"--reward-seed: got {seed!r}; expected an integer >= 0")
    section: dict[str, Any] = {"name": name, "options": options, "format_gate": format_gate}
    if p is not None:
        if name != "random":
            raise ValueError(f"--reward-p: given with --reward {name!r}; expected it only with 'random'")
        section["p"] = p
    try:
        cfg = validate({"reward": section}, source="studykit score --reward")
    except ConfigError as err:
        raise ValueError(_flags(str(err))) from None
    r = cfg.reward
    extra = {"p": r.p} if r.name == "random" else {}
    fn = plugins.reward(r.name, format_gate=r.format_gate, verify=task.verify, **extra, **r.options)
    options = fn.options if isinstance(fn, plugins.PluginReward) else dict(r.options)  # with defaults filled in
    return RewardSpec(r.name, options, r.format_gate, seed, cfg.plugins().get("reward"), fn)


def _flags(message: str) -> str:
    """The config's field names as this command's flags."""
    for key, flag in (("reward.options", "--reward-option"), ("reward.format_gate", "--reward-format-gate"),
                      ("reward.name", "--reward"), ("reward.p", "--reward-p")):
        message = message.replace(f"{key}", f"{flag} ({key})")
    return message


def score_groups(spec: RewardSpec, groups: dict[str, list[str]], by_id: dict, budget: verify.Budget) -> RewardScore:
    """The reward of every group, in the calling (main) thread so a plug-in's deadline is armed."""
    rng = np.random.default_rng(spec.seed)
    means, timeouts = {}, []
    with budget.applied():
        for pid, completions in groups.items():
            res = spec.fn(completions, by_id[pid], rng=rng)
            means[pid] = float(np.mean(res.rewards))
            if res.extra.get("plugin_timeout"):
                timeouts.append(pid)
    return RewardScore(means, timeouts)
