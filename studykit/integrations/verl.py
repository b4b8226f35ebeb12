"""studykit's reward as verl's custom reward function.

verl 0.9.1 loads it with `reward.custom_reward_function.path=pkg://studykit.integrations.verl` and
`reward.custom_reward_function.name=compute_score` (verl.trainer.ppo.reward.get_custom_reward_fn), and its reward
manager calls it once per completion as `compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`
(verl.experimental.reward_loop.reward_manager.naive), adding `num_turns` and `rollout_reward_scores` to
`extra_info` and any `reward_kwargs` as keywords. The dict it returns becomes verl's reward (`score`) and its
reward extra info: verl's validation metrics use `acc` as their core variable (`val-core/<data_source>/acc/...`).

What the export writes and this function reads (studykit.integrations.verl_export):
- `data_source`: `studykit/<task>` for training rows, `studykit/<task>/<eval set>` for evaluation rows; the task
  names the verifier (`studykit.tasks.verifier`).
- the returned dict also names the eval set and problem (`studykit_set`, `studykit_problem_id`; strings, which
  verl's validation metrics skip) so its validation dumps can be rescored (studykit.integrations.verl_import).
- `extra_info`: `problem_id`, `meta` (the problem's meta as JSON text), `reward` (`name`, `p`, `format_gate`,
  `seed`, and for `noisy_ground_truth` `false_negative`/`false_positive`: the run's reward condition; evaluation
  rows carry ground truth without gate) and, for math tasks, `verify_timeout_s`. Without `reward` the condition is
  ground truth with the format gate (the paper's reward).

Conditions: `ground_truth`, `random`, `incorrect`, `format` and `noisy_ground_truth` (its rates in
`extra_info.reward`: `false_negative`, `false_positive`) are scored per completion by studykit's own reward classes
(studykit.scoring.rewards), so the values are the ones studykit's loop would give. `random` and `noisy_ground_truth`
draw from a generator seeded by the run seed, the problem id and a hash of the completion: the same completion of
the same problem always gets the same reward or flip (the loop's stream instead depends on call order; identical
completions in one group therefore share one flip here, independent ones in the loop). `majority_vote` needs the
whole group and `self_certainty` the token log-probs; verl hands neither to a per-completion reward, so both are
refused (the export refuses them first). Hostile completions never raise (studykit.scoring.rewards): a non-string is
read as "", extraction looks at a bounded tail, and math checks run under the verifier's deadline.

Reward plug-ins (issue 22; studykit.integrations.verl_plugins writes them): a row whose `extra_info.reward` has
`plugin` (an import path), `options` (JSON text) and `identity` is paid by that plug-in in studykit's wrapper
(scoring.plugins.PluginReward: format gate, bounded extraction, values checked), one completion as a group of one,
with `completion_rng` as its generator. The module is imported here, in verl's process: when it cannot be, or its
source hash is not the exported identity's, the call raises PluginError naming the plug-in (`IMPORTABLE` says how to
make it importable). verl runs this function in executor threads, where the plug-in's signal deadline is not armed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

import numpy as np

from studykit.infra.plugins import Plugin, PluginError
from studykit.scoring import rewards
from ..tasks import Problem, verifier

DATA_SOURCE_PREFIX = "studykit/"
PER_COMPLETION = ("ground_truth", "random", "incorrect", "format", "noisy_ground_truth")
SEEDED = ("random", "noisy_ground_truth")  # one draw per completion from `completion_rng`
NEEDS_GROUP = {"majority_vote": "the whole group of completions (its pseudo-label is the group's majority answer)",
               "self_certainty": "the completion's token log-probs"}
DEFAULT_REWARD = {"name": "ground_truth", "format_gate": True, "p": 0.5, "seed": 0}


IMPORTABLE = ("the plug-in's module must be importable in verl's environment (the driver and every Ray worker): "
              "install its package there, or put its folder on PYTHONPATH (see launch.sh)")


def encode_options(options: dict[str, Any]) -> str:
    """Plug-in options as URL-safe base64 of their JSON (safe in an environment variable and a Hydra override)."""
    return base64.urlsafe_b64encode(json.dumps(options, sort_keys=True).encode()).decode().rstrip("=")


def decode_options(text: str) -> dict[str, Any]:
    """The options `encode_options` wrote; ValueError naming what was expected."""
    try:
        options = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError) as err:
        raise ValueError(f"plug-in options {text!r}: not base64 JSON as `studykit export verl` writes ({err})") from None
    if not isinstance(options, dict):
        raise ValueError(f"plug-in options {text!r}: decode to {type(options).__name__}; expected a mapping")
    return options


def load_plugin(kind: str, target: str, identity: str, shipped) -> Plugin:
    """The exported plug-in, imported here; PluginError when it cannot be imported (with `IMPORTABLE`) or when its
    source hash differs from the exported `identity` (the run's config hash would not describe the code run)."""
    from studykit.scoring import plugins

    try:
        plugin = plugins.load(kind, target, shipped)
    except PluginError as err:
        raise PluginError(f"{err}; {IMPORTABLE}") from None
    want, got = identity.rpartition("#")[2], plugin.identity.rpartition("#")[2]
    if want != got:
        raise PluginError(f"{plugin}: the code here ({plugin.identity}) is not the exported code ({identity}): its "
                          "source hash differs; install the exported version in verl's environment or export again")
    return plugin


def task_of(data_source: str) -> str:
    """The studykit task a `data_source` names (`studykit/<task>` or `studykit/<task>/<eval set>`)."""
    if not isinstance(data_source, str) or not data_source.startswith(DATA_SOURCE_PREFIX):
        raise ValueError(f"data_source {data_source!r}: expected 'studykit/<task>[/<eval set>]', as written by "
                         "`studykit export verl`")
    task = data_source[len(DATA_SOURCE_PREFIX):].split("/", 1)[0]
    if not task:
        raise ValueError(f"data_source {data_source!r}: no task name after 'studykit/'")
    return task


def eval_set_of(data_source: str) -> str:
    """The eval-set label of an evaluation row's data_source ("" for a training row)."""
    parts = data_source[len(DATA_SOURCE_PREFIX):].split("/", 1)
    return parts[1] if len(parts) == 2 else ""


def refusal(name: str) -> str | None:
    """Why reward condition `name` cannot be computed one completion at a time by verl (None when it can)."""
    if name in NEEDS_GROUP:
        return (f"reward {name!r} needs {NEEDS_GROUP[name]}, which verl's per-completion reward function is not "
                f"given; it runs only in studykit's own loop (conditions verl can run: {', '.join(PER_COMPLETION)})")
    if name not in PER_COMPLETION:
        return f"unknown reward {name!r}; expected one of {', '.join(PER_COMPLETION)}"
    return None


@lru_cache(maxsize=64)
def _verify_fn(task: str, timeout_s: float | None):
    """The task's verifier; math tasks with the run's `timeout_s` (studykit.tasks.math)."""
    if timeout_s is not None and task in rewards.MATH_TASKS:
        from ..tasks.math import MathTask

        return MathTask("math500", timeout_s=timeout_s).verify
    return verifier(task)


@lru_cache(maxsize=64)
def _reward_fn(name: str, format_gate: bool, p: float, task: str, timeout_s: float | None,
               false_negative: float = 0.0, false_positive: float = 0.0):
    options: dict[str, Any] = {"format_gate": format_gate, "verify": _verify_fn(task, timeout_s)}
    if name == "random":
        options["p"] = p
    if name == "noisy_ground_truth":
        options.update(false_negative=false_negative, false_positive=false_positive)
    return rewards.get(name, **options)


@lru_cache(maxsize=16)
def _plugin_fn(target: str, options: str, identity: str, format_gate: bool, task: str, timeout_s: float | None):
    from studykit.scoring import plugins

    try:
        opts = json.loads(options) if options else {}
    except ValueError:
        raise ValueError(f"extra_info['reward']['options'] {options!r}: expected JSON text") from None
    plugin = load_plugin("reward", target, identity, tuple(rewards.names()))
    return plugins.PluginReward(plugin, format_gate, _verify_fn(task, timeout_s), **opts)


def _reward_settings(extra_info: dict) -> dict[str, Any]:
    given = extra_info.get("reward")
    if given is None:
        return dict(DEFAULT_REWARD)
    if not isinstance(given, dict) or "name" not in given:
        raise ValueError(f"extra_info['reward']: expected a mapping with 'name' (and p, format_gate, seed), got "
                         f"{given!r}")
    return {**DEFAULT_REWARD, **{k: v for k, v in given.items() if v is not None}}


def completion_rng(seed: int, problem_id: str, completion: str) -> np.random.Generator:
    """The generator of `random`'s draw for one completion: seed, problem id and completion hash."""
    digest = hashlib.sha256(f"{problem_id}\0{completion}".encode("utf-8", "replace")).digest()
    return np.random.default_rng([int(seed), *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


def _problem(task: str, ground_truth: Any, extra_info: dict) -> Problem:
    meta: dict[str, Any] = {}
    raw = extra_info.get("meta")
    if isinstance(raw, str) and raw:
        loaded = json.loads(raw)
        meta = loaded if isinstance(loaded, dict) else {}
    elif isinstance(raw, dict):
        meta = dict(raw)
    meta["task"] = task
    pid = str(extra_info.get("problem_id", ""))
    return Problem(pid, str(extra_info.get("question", "")), "" if ground_truth is None else str(ground_truth), meta)


def compute_score(data_source: str, solution_str: Any, ground_truth: Any, extra_info: dict | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """verl's custom reward: {"score": training reward, "acc": true correctness (0/1), "format": format check
    (0/1), "studykit_set": eval-set label or "", "studykit_problem_id"} for one completion. Extra keywords (verl's `reward_kwargs`, reward-router addresses) are accepted and
    not used. ValueError for a data_source that is not studykit's or a condition verl cannot run."""
    info = extra_info if isinstance(extra_info, dict) else {}
    task = task_of(data_source)
    settings = _reward_settings(info)
    timeout = info.get("verify_timeout_s")
    timeout = None if timeout is None else float(timeout)
    if settings.get("plugin"):
        fn = _plugin_fn(str(settings["plugin"]), str(settings.get("options") or ""), str(settings.get("identity", "")),
                        bool(settings["format_gate"]), task, timeout)
    else:
        why = refusal(settings["name"])
        if why:
            raise ValueError(why)
        fn = _reward_fn(settings["name"], bool(settings["format_gate"]), float(settings["p"]), task, timeout,
                        float(settings.get("false_negative", 0.0)), float(settings.get("false_positive", 0.0)))
    text = solution_str if isinstance(solution_str, str) else ""
    problem = _problem(task, ground_truth, info)
    seeded = settings["name"] in SEEDED or settings.get("plugin")
    rng = completion_rng(int(settings["seed"]), problem.id, text) if seeded else None
    result = fn([text], problem, rng=rng)
    # `studykit_set` / `studykit_problem_id` reach verl's validation dumps, which `studykit import verl` rescores
    return {"score": float(result.rewards[0]), "acc": float(result.correct[0]), "format": float(result.format_ok[0]),
            "studykit_set": eval_set_of(data_source), "studykit_problem_id": problem.id}
