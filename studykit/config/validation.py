"""Checks of a run or study file beyond its schema, so that whatever can fail before a run starts fails at validation.

Registry names (tasks, their splits, templates, `toy:<preset>` models, toy recipe knobs), plug-ins (rewards,
estimators, tasks: imported and checked against their interface, their options too), keyword options checked
against the constructor they reach (task options, sampler options: `inspect.signature`, annotations included), the
files and folders a config names (math data files, local model folders, the checkpoint folder) and the tracking URI's
database driver. (Reading the YAML and formatting errors: studykit.config.paramfile.)

Each check raises `CheckError("got X; expected Y", key=...)`; the pydantic validators of `studykit.config.schema` and
`studykit.study.spec` call them, and `studykit.config.paramfile.describe` prefixes the field (the validator's location + `key`).
Task, toy and sampler modules are imported inside the checks (the sampler ones only when options are given), so
importing this module, and `studykit.config.schema`, stays cheap; this module never imports `studykit.config.schema`.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError

from studykit.config.paramfile import CheckError, short

DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")  # what studykit.tasks.math.read_rows reads
# Tracking-URI schemes MLflow serves without extra packages, and the driver module each database URI needs
# (SQLAlchemy's default driver for a bare dialect).
NO_DRIVER_SCHEMES = ("", "file", "sqlite", "http", "https", "databricks", "databricks-uc", "uc")
DB_DRIVERS = {
    "postgresql": "psycopg2", "postgresql+psycopg2": "psycopg2", "postgresql+psycopg": "psycopg",
    "postgresql+pg8000": "pg8000", "mysql": "MySQLdb", "mysql+mysqldb": "MySQLdb", "mysql+pymysql": "pymysql",
    "mysql+mysqlconnector": "mysql.connector", "mssql": "pyodbc", "mssql+pyodbc": "pyodbc", "mssql+pymssql": "pymssql",
    "sqlite+pysqlite": "sqlite3",
}


# ---- tasks and templates


def check_task(name: str) -> str:
    """`name` is in the task registry, or a task plug-in that imports and has the Task members."""
    from studykit import tasks

    if tasks.is_plugin(name):
        _plugin_check(tasks.plugin, name)
        return name
    if name not in tasks.names():
        raise CheckError(f"got {name!r}; expected one of {', '.join(tasks.names())}")
    return name


def check_split(task: str, split: str) -> str:
    """`split` is one of the splits task `task` declares."""
    from studykit import tasks

    allowed = tasks.splits(task)
    if split not in allowed:
        raise CheckError(f"got {split!r}; task {task!r} has splits {', '.join(allowed)}")
    return split


def check_template(name: str | None) -> str | None:
    """`name` is a prompt template of studykit.tasks.templates (None = the task's default)."""
    from studykit.tasks.templates import TEMPLATES

    if name is not None and name not in TEMPLATES:
        raise CheckError(f"got {name!r}; expected one of {', '.join(TEMPLATES)} (or null for the task's default)")
    return name


def _task_class(name: str):
    """The constructor `studykit.tasks.get(name)` calls and how many leading arguments the registry fills itself."""
    from studykit import tasks

    if name in tasks.names() or tasks.is_plugin(name):
        return tasks.task_class(name)
    from studykit.tasks.math import MathTask

    return MathTask, 1


def check_task_options(name: str, options: dict[str, Any]) -> None:
    """`options` fit task `name`'s constructor (names and types), a `path` is an existing data file, and the task
    accepts them (e.g. `math` needs `path`); the task is built, which reads no data."""
    from studykit import tasks

    cls, filled = _task_class(name)
    check_kwargs(cls, options, f"task {name!r}", skip=filled)
    path = options.get("path")
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            where = "" if file.is_absolute() else f" (relative to the working directory {Path.cwd()})"
            raise CheckError(f"got {str(path)!r}; expected an existing {'/'.join(DATA_SUFFIXES)} file{where}", "path")
        if file.suffix.lower() not in DATA_SUFFIXES:
            raise CheckError(f"got {str(path)!r}; expected a {', '.join(DATA_SUFFIXES)} file", "path")
    try:
        tasks.get(name, **options)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        raise CheckError(f"got {short(options)}; {message}") from None


ALIGNMENT_K_DEFAULT = 16  # config.EvalConfig.alignment_k's default: "the largest logged k up to 16"


def check_eval_ks(ks: list[int], n_samples: int, alignment_k: int, labels: list[str]) -> None:
    """Each k in 1..n_samples; alignment_k at least the smallest k (the alignment label uses the largest logged
    k <= alignment_k: below every k the run's tag would be 'unmeasured') and at most the largest unless it is the
    default (above every k the label would silently be pass@max(ks)); distinct eval-set labels (their metrics and
    count artifacts would mix)."""
    bad = [k for k in ks if k < 1 or k > n_samples]
    if bad:
        raise CheckError(f"got {bad}; expected each k between 1 and eval.n_samples={n_samples}", "ks")
    if alignment_k < min(ks):
        raise CheckError(f"got {alignment_k}; expected at least {min(ks)}, the smallest of eval.ks {ks} (the label "
                         "uses the largest logged k <= alignment_k)", "alignment_k")
    # The default is exempt: it is stored in every dumped config (notebook parameters, manifests), so a config with
    # ks below 16 must survive its own round trip; its meaning, the largest k up to 16, is documented.
    if alignment_k > max(ks) and alignment_k != ALIGNMENT_K_DEFAULT:
        raise CheckError(f"got {alignment_k}; expected at most {max(ks)}, the largest of eval.ks {ks} (the label "
                         f"would be pass@{max(ks)}, not pass@{alignment_k}): add {alignment_k} to eval.ks (and "
                         "eval.n_samples) or lower alignment_k", "alignment_k")
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise CheckError(f"got the label {twice[0]!r} twice; expected distinct labels (set `name`)", "sets")


def check_eval_tasks(data_task: str, eval_tasks: list[str]) -> None:
    """An eval set of another task than `data_task` is built without options (studykit.engine.trainer, alignment), so its
    task must need none (not `math` / `deepscaler`, which need a path)."""
    for i, task in enumerate(eval_tasks):
        if task != data_task:
            try:
                check_task_options(task, {})
            except CheckError as err:
                why = str(err).split("; ", 1)[-1]
                raise CheckError(f"got {task!r}; {why} (an eval set gets task_options only when its task is "
                                 f"data.task, here {data_task!r})", f"eval.sets.{i}.task") from None


def check_pool_index(task: str, split: str, train_size: int | None, index: int) -> None:
    """`index` lies inside the training pool `task.load(split)[:train_size]`, when its size is knowable without a
    user's file (the toy and logic splits, the shipped math sets, or a train_size cap); else run time says so."""
    from studykit import tasks

    sizes = [n for n in (tasks.pool_size(task, split), train_size) if n is not None]
    if sizes and index >= min(sizes):
        raise CheckError(f"got {index}; expected an index below {min(sizes)}, the size of the {task!r} {split!r} "
                         f"training pool" + (f" capped by train_size={train_size}" if train_size else ""),
                         "one_shot.index")


def check_one_shot_source(task: str, split: str, train_size: int | None, steps: int, prompts_per_step: int) -> None:
    """`historical_variance` ranks examples by the variance of their per-epoch accuracy in the full-data source run
    (this config's recipe with full data): that run draws steps x prompts_per_step prompts, so with a pool of P it
    sees every example in two epochs only when that is >= 2 x P, and none when it is <= P. Refuse the second case
    (the run could never start), and a pool whose size is unknown before a user's file is read (set train_size).
    Between P and 2P only the examples drawn twice are ranked (the toy study: 1,600 prompts over 1,024)."""
    from studykit import tasks

    sizes = [n for n in (tasks.pool_size(task, split), train_size) if n is not None]
    if not sizes:
        raise CheckError(f"got None with data.one_shot.rule historical_variance over task {task!r}, whose training "
                         "pool size is unknown before its file is read; expected data.train_size (the subset the "
                         f"source run sees at least twice: at most steps x prompts_per_step / 2 = "
                         f"{steps * prompts_per_step // 2}; 1-shot RLVR ranks a 1.2k DeepScaleR subset)", "train_size")
    pool, drawn = min(sizes), steps * prompts_per_step
    if drawn <= pool:
        raise CheckError(f"got a training pool of {pool} with train.steps {steps} x train.prompts_per_step "
                         f"{prompts_per_step} = {drawn} prompts: the full-data run that data.one_shot.rule "
                         f"historical_variance ranks examples from would see no example in a second epoch; expected "
                         f"data.train_size at most {drawn // 2} (every example in two epochs; 1-shot RLVR ranks a 1.2k "
                         "DeepScaleR subset), more steps, or one_shot.rule base_variance", "train_size")


# ---- models


def check_model_name(name: str) -> str:
    """A `toy:<preset>`, a `runs:/` policy, an existing local folder, or a hub id."""
    from studykit.toy.presets import NAMES

    if not name.strip():
        raise CheckError("got ''; expected a hub id, a local folder or toy:<preset>")
    if name.startswith("toy:"):
        if name[4:] not in NAMES:
            raise CheckError(f"got {name!r}; expected toy:<preset> with preset one of {', '.join(NAMES)}")
        return name
    if name.startswith("runs:/"):
        return name
    path = Path(name).expanduser()
    if (name.startswith((".", "/", "~")) or path.exists()) and not path.is_dir():
        raise CheckError(f"got {name!r}; expected an existing model folder (save_pretrained output), a hub id "
                         f"(org/name) or toy:<preset>")
    return name


def check_toy_knobs(name: str, knobs: dict[str, Any]) -> None:
    """Knobs only for `toy:custom` (studykit.policy.models passes them to no other model), each a ToyRecipe field with a
    value the recipe accepts."""
    from studykit.toy.presets import ToyRecipe

    if not knobs:
        return
    if name != "toy:custom":
        raise CheckError(f"got {short(knobs)} with model.name {name!r}; expected no knobs: they reach only "
                         "model.name 'toy:custom'")
    fields = ToyRecipe.model_fields
    for key, value in knobs.items():
        if key not in fields:
            raise CheckError(f"got unknown knob {key!r}; expected ToyRecipe fields: {', '.join(fields)}", str(key))
        if isinstance(value, bool):
            raise CheckError(f"got {value!r}; expected a number or name, not a boolean", str(key))
    try:
        ToyRecipe(**knobs)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(map(str, first["loc"])) or None
        got = f"got {short(first['input'])}; " if key else ""
        raise CheckError(got + first["msg"].replace("Value error, ", "").replace("Input should be", "expected"),
                         key) from None


# ---- keyword options against a constructor


def _signature(target: Any) -> inspect.Signature:
    try:
        return inspect.signature(target, eval_str=True)
    except (NameError, TypeError):  # an annotation that does not evaluate: check names only
        return inspect.signature(target)


def check_kwargs(target: Any, options: dict[str, Any], what: str, skip: int = 0,
                 extra_note: str = "") -> None:
    """Every key of `options` is a keyword parameter of `target` (a class or function; the first `skip` parameters
    are filled by the caller) and every value fits its annotation (strictly: no bool for an int, no str for a number).
    A `**kwargs` parameter accepts other keys unchecked."""
    every = [p for p in _signature(target).parameters.values() if p.name != "self"]
    params, filled = every[skip:], {p.name for p in every[:skip]}
    named = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    for key, value in options.items():
        if key in filled:
            raise CheckError(f"got option {key!r}; studykit passes {key!r} to {what} itself", str(key))
        param = named.get(key)
        if param is None:
            if open_ended and key not in {p.name for p in params}:
                continue
            allowed = ", ".join(named) or "none"
            raise CheckError(f"got unknown option {key!r}; {what} takes {allowed}{extra_note}", str(key))
        if param.annotation is inspect.Parameter.empty or param.annotation is Any:
            continue
        try:
            TypeAdapter(param.annotation).validate_python(value, strict=True)
        except ValidationError:
            shown = getattr(param.annotation, "__name__", None) or str(param.annotation).replace("typing.", "")
            raise CheckError(f"got {short(value)}; {what} expects {shown}", str(key)) from None
        except Exception:  # noqa: BLE001 - an annotation pydantic cannot build a schema for: names only
            continue


def check_sampler_options(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` fit the constructor of sampler `kind` (HFSampler / VLLMSampler), read from its signature; the
    backend module is imported only here, and never vllm itself (keys VLLMSampler passes on to vllm.LLM are not
    checked)."""
    if not options:
        return options
    if kind == "hf":
        from studykit.policy.sampling.hf import HFSampler as target
    else:
        from studykit.policy.sampling.vllm_backend import VLLMSampler as target
    note = " (other keys go to vllm.LLM unchecked)" if kind == "vllm" else ""
    check_kwargs(target, options, f"sampler {kind!r} ({target.__name__})", skip=1, extra_note=note)
    return options


# ---- the environment: folders and the tracking store


def check_folder(path: str) -> str:
    """`path` is a folder or can become one: no part of it that exists is a file."""
    p = Path(path).expanduser()
    for part in (p, *p.parents):
        if part.exists():
            if not part.is_dir():
                where = "it" if part == p else f"{str(part)!r}"
                raise CheckError(f"got {path!r}; expected a folder, but {where} is a file")
            break
    return path


def check_tracking_uri(uri: str | None) -> str | None:
    """A scheme MLflow serves, whose database driver (if any) is installed; a local sqlite path that can be a file."""
    if uri is None:
        return uri
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a plain path
        scheme = ""
    if scheme in NO_DRIVER_SCHEMES:
        if scheme == "sqlite" and uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
            check_folder(str(Path(uri[len("sqlite:///"):]).parent))
        return uri
    if scheme not in DB_DRIVERS:
        known = ", ".join(s + "://" for s in (*NO_DRIVER_SCHEMES[1:], *DB_DRIVERS))
        raise CheckError(f"got {uri!r}; expected a path or a URI with scheme {known}")
    driver = DB_DRIVERS[scheme]
    try:
        found = importlib.util.find_spec(driver) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise CheckError(f"got {uri!r}; the {scheme} store needs the Python module {driver!r}, which is not "
                         f"installed (pip install the driver, or use sqlite:///path/mlflow.db)")
    return uri


# ---- plug-ins: rewards, estimators and tasks from the user's own code (studykit.infra.plugins)


def _plugin_check(call, *args):
    """`call(*args)` with a plug-in's PluginError as a CheckError (its message names the plug-in and what was
    expected)."""
    from studykit.infra.plugins import PluginError

    try:
        return call(*args)
    except PluginError as err:
        raise CheckError(str(err)) from None


def check_reward(name: str) -> str:
    """A shipped reward condition, or a reward plug-in that imports and has the reward interface."""
    from studykit.scoring import plugins, rewards

    if name not in rewards.names():
        _plugin_check(plugins.load, "reward", name, rewards.names())
    return name


def check_estimator(name: str, shipped: tuple[str, ...]) -> str:
    """A shipped advantage estimator (`shipped`), or an estimator plug-in with the estimator interface."""
    from studykit.scoring import plugins

    if name not in shipped:
        _plugin_check(plugins.load, "estimator", name, shipped)
    return name


def check_plugin_options(kind: str, name: str, options: dict[str, Any], shipped: tuple[str, ...],
                         settings: str) -> dict[str, Any]:
    """Options only for a plug-in (a shipped `name` has its own fields, `settings`), validated by the plug-in's
    `Options` pydantic model when it has one, else against its signature after the arguments studykit passes."""
    from studykit.scoring import plugins

    if name in shipped:
        if options:
            raise CheckError(f"got {short(options)} with the shipped {kind} {name!r}; expected {{}} (options reach "
                             f"plug-ins only; {name!r} is set by {settings})")
        return options
    plugin = _plugin_check(plugins.load, kind, name, shipped)
    if kind == "reward" and "format_gate" in options:
        raise CheckError("got option 'format_gate'; expected reward.format_gate (studykit gates every reward)",
                         "format_gate")
    if getattr(plugin.obj, "Options", None) is not None:
        _plugin_check(plugins.call_options, plugin, options)
    else:
        check_kwargs(plugin.obj, options, str(plugin), skip=plugins.INTERFACES[kind][0])
    return options


def check_no_clashes(estimators: tuple[str, ...]) -> None:
    """No installed distribution registers a shipped name under `studykit.rewards` / `studykit.estimators` /
    `studykit.tasks` (the config's field for that kind is named in the error)."""
    from studykit import tasks
    from studykit.infra.plugins import PluginError, check_no_clash
    from studykit.scoring import rewards

    for kind, shipped, key in (("reward", rewards.names(), "reward.name"), ("estimator", estimators, "algo.estimator"),
                               ("task", tasks.names(), "data.task")):
        try:
            check_no_clash(kind, shipped)
        except PluginError as err:
            raise CheckError(str(err), key) from None


def plugin_identities(reward: str, estimator: str, estimators: tuple[str, ...], task_names: list[str]) -> dict[str, str]:
    """{kind: identity} of the plug-ins a config uses (reward, estimator, task, and `task.<i>` for the i-th distinct
    plug-in task of the eval sets); {} when it uses only shipped names."""
    from studykit import tasks
    from studykit.scoring import plugins, rewards

    out = {}
    if reward not in rewards.names():
        out["reward"] = _plugin_check(plugins.load, "reward", reward, rewards.names()).identity
    if estimator not in estimators:
        out["estimator"] = _plugin_check(plugins.load, "estimator", estimator, estimators).identity
    for i, name in enumerate(dict.fromkeys(task_names)):
        if tasks.is_plugin(name):
            out["task" if i == 0 else f"task.{i}"] = _plugin_check(tasks.plugin, name).identity
    return out
