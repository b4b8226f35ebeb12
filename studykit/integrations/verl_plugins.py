"""A run's plug-ins (issue 22) in verl 0.9.1's terms, for `studykit export verl` (pure: no MLflow, no verl import).

- A reward plug-in goes through studykit's own custom reward function, as the shipped conditions do
  (`reward.custom_reward_function.path=pkg://studykit.integrations.verl`, `name=compute_score`): every training row's
  `extra_info.reward` carries the plug-in's import path (`plugin`, the resolved `module:attribute`, also for an entry
  point's bare name), its options (`options`, JSON text) and its identity (`identity`), and `compute_score` imports the
  module on the verl side, checks that its code is the exported code (the source hash of the identity) and pays each
  completion as a group of one. verl calls a reward once per completion, so only a plug-in that declares
  `fn.per_completion = True` (its value for a completion ignores the rest of the group) is exported; any other is
  refused with that reason. Its generator is seeded per completion as `random`'s is (verl.completion_rng).
- An estimator plug-in is registered in verl's estimator registry under `PLUGIN_ESTIMATOR` by
  studykit.integrations.verl_estimators (imported through `VERL_USE_EXTERNAL_MODULES`, as the shipped estimators verl
  lacks), which reads the plug-in from the environment (`ENV`: import path, options as base64 JSON, identity) in the
  launch script and in every Ray worker's runtime env, and calls it once per prompt group (verl's uid).
- Task plug-ins (`data.task` or an eval set) are refused: verl's reward function rebuilds the task from the
  `data_source` name without `data.task_options`, so a user's task would be verified with its default options.

The plug-in's module must be importable in verl's environment, in the driver and every Ray worker: install its
package there, or put its folder on PYTHONPATH (the launch script prepends the folder of a loose module, as found at
export time; Ray workers of a local cluster inherit it; on a multi-node cluster install the package). Where it is not
importable, compute_score / the estimator fail with the plug-in named and this advice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studykit.config.schema import ESTIMATORS, RunConfig
from studykit.infra.plugins import Plugin
from studykit.scoring import plugins as scoring_plugins
from studykit.scoring import rewards
from .verl import encode_options

PLUGIN_ESTIMATOR = "studykit_plugin"
ENV = {"target": "STUDYKIT_ESTIMATOR_PLUGIN", "options": "STUDYKIT_ESTIMATOR_OPTIONS",
       "identity": "STUDYKIT_ESTIMATOR_IDENTITY"}
RAY_ENV = "+ray_kwargs.ray_init.runtime_env.env_vars"


def reward_plugin(cfg: RunConfig) -> Plugin | None:
    return None if cfg.reward.name in rewards.names() else scoring_plugins.load("reward", cfg.reward.name,
                                                                                    rewards.names())


def estimator_plugin(cfg: RunConfig) -> Plugin | None:
    return None if cfg.algo.estimator in ESTIMATORS else scoring_plugins.load("estimator", cfg.algo.estimator,
                                                                              ESTIMATORS)


def reward_fields(cfg: RunConfig) -> dict[str, Any]:
    """What a training row's `extra_info.reward` adds for a reward plug-in ({} for a shipped condition)."""
    plugin = reward_plugin(cfg)
    if plugin is None:
        return {}
    return {"plugin": plugin.target, "options": json.dumps(cfg.reward.options, sort_keys=True),
            "identity": plugin.identity}


def refusals(cfg: RunConfig) -> list[str]:
    """Each plug-in setting of `cfg` that cannot be translated, with the field and why."""
    out: list[str] = []
    plugged = cfg.plugins()
    reward = reward_plugin(cfg)
    if reward is not None and not scoring_plugins.is_per_completion(reward):
        out.append(f"reward.name {cfg.reward.name!r}: the reward plug-in ({plugged['reward']}) is called with the whole "
                   "group in studykit's loop, and verl calls a reward once per completion; if its value for one "
                   "completion does not depend on the others, declare it with `<function>.per_completion = True` and "
                   "export again")
    if reward is not None:
        try:
            json.dumps(cfg.reward.options)
        except (TypeError, ValueError) as err:
            out.append(f"reward.options: {err}; expected JSON values (they travel in the parquet rows)")
    if estimator_plugin(cfg) is not None:
        try:
            json.dumps(cfg.algo.estimator_options)
        except (TypeError, ValueError) as err:
            out.append(f"algo.estimator_options: {err}; expected JSON values (they travel in the environment)")
    for key, identity in plugged.items():
        if key.startswith("task"):
            where = "data.task" if key == "task" else "eval.sets"  # `task`: data.task's (config.validation)
            out.append(f"{where}: the task plug-in ({identity}) is not translated to verl: verl's reward function "
                       "rebuilds the task from the data_source name without data.task_options; it runs in "
                       "studykit's own loop only")
    return out


def estimator_overrides(cfg: RunConfig) -> list[str]:
    """The Hydra overrides of an estimator plug-in ([] without one)."""
    if estimator_plugin(cfg) is None:
        return []
    return [f"algorithm.adv_estimator={PLUGIN_ESTIMATOR}",
            *(f"{RAY_ENV}.{name}={_hydra_quoted(value)}" for name, value in env(cfg).items())]


def env(cfg: RunConfig) -> dict[str, str]:
    """The environment that tells studykit.integrations.verl_estimators which estimator plug-in to register."""
    plugin = estimator_plugin(cfg)
    if plugin is None:
        return {}
    return {ENV["target"]: plugin.target, ENV["options"]: encode_options(cfg.algo.estimator_options),
            ENV["identity"]: plugin.identity}


def _hydra_quoted(value: str) -> str:
    """A Hydra override value as a quoted string; the values here (an import path, base64, an identity) hold no
    quote, backslash or `${`, which a quoted Hydra string would read specially."""
    if any(bad in value for bad in ("'", "\\", "${")):
        raise ValueError(f"cannot pass {value!r} through a Hydra override; expected no quote, backslash or '${{'")
    return f"'{value}'"


def _folder(plugin: Plugin) -> str | None:
    """The sys.path folder the plug-in's module was imported from (None when its file is unknown)."""
    import sys

    module_name = plugin.target.partition(":")[0]
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file:
        return None
    depth = len(module_name.split(".")) - (0 if Path(file).name == "__init__.py" else 1)
    return str(Path(file).resolve().parents[depth])


def pythonpath(cfg: RunConfig) -> list[str]:
    """Folders the launch script puts in front of PYTHONPATH: those of loose plug-in modules (no installed version)."""
    out = []
    for plugin in (reward_plugin(cfg), estimator_plugin(cfg)):
        if plugin is not None and "==" not in plugin.identity:
            folder = _folder(plugin)
            if folder and folder not in out:
                out.append(folder)
    return out


def manifest(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """{kind: name, target, identity, options, folder} of the exported plug-ins."""
    out = {}
    for kind, plugin, options in (("reward", reward_plugin(cfg), cfg.reward.options),
                                  ("estimator", estimator_plugin(cfg), cfg.algo.estimator_options)):
        if plugin is not None:
            out[kind] = {"name": plugin.name, "target": plugin.target, "identity": plugin.identity,
                         "options": options, "folder": _folder(plugin)}
    return out


def departures(cfg: RunConfig) -> list[str]:
    """What verl does differently with the plug-ins, and where their modules must be importable."""
    out = []
    reward, estimator = reward_plugin(cfg), estimator_plugin(cfg)
    if reward is not None:
        out.append(f"reward plug-in {reward.identity}: verl calls it once per completion (a group of one) with a "
                   "generator seeded by the run seed, problem id and completion; it runs in verl's reward threads, "
                   f"where studykit's {scoring_plugins.TIME_LIMIT_S:g} s signal deadline cannot be armed (math checks "
                   "keep their own deadline)")
    if estimator is not None:
        out.append(f"estimator plug-in {estimator.identity}: registered as algorithm.adv_estimator="
                   f"{PLUGIN_ESTIMATOR}, called per prompt group (verl's uid) on the summed token rewards")
    for plugin in (p for p in (reward, estimator) if p is not None):
        out.append(f"{plugin.kind} plug-in module {plugin.target.partition(':')[0]!r} must be importable in verl's "
                   "environment (driver and every Ray worker): install its package there or put its folder on "
                   "PYTHONPATH; it fails named otherwise, and refuses code whose source hash differs from the export")
    return out
