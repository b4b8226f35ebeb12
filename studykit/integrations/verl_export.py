"""`studykit export verl PARAMS --out DIR`: a run's problems as verl parquet, a launch script, and a pre-created run.

DIR gets:
- `train.parquet` (the training pool: `data.train_split` capped at `data.train_size`) and `val.parquet` (every eval
  set, `limit` applied), in verl's RL dataset schema (studykit.integrations.verl_translate.row);
- `launch.sh`: `python -m verl.trainer.main_ppo` with the translated Hydra overrides and the MLflow environment
  (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MLFLOW_RUN_ID), then `studykit import verl` (its epilogue) with the
  run's exit status, so the run ends FINISHED or FAILED with studykit's eval metrics in it;
- `manifest.json`: the config, its hash, the run id, the eval sets and their data sources, the departures,
  `prompt_tokens` (how every prompt was measured, the longest, the `data.max_prompt_length` chosen) and `plugins`
  (each plug-in's import path, identity, options and the folder it was imported from).

Plug-ins (studykit.integrations.verl_plugins): the launch script sets the estimator plug-in's environment, puts the
folder of a loose plug-in module in front of PYTHONPATH, and says in its comments that each plug-in's module must be
importable in verl's environment.

Prompt lengths (studykit.integrations.verl_prompts): every row is measured, with the model's tokenizer and chat
template where they load offline, else by a stated estimate; `data.max_prompt_length` is set to cover the longest
(rounded up to 128), and verl's `data.filter_overlong_prompts` is off, so no row is dropped silently. A limit given
to `export` (`--max-prompt-length`) below the longest is refused with the number of rows it would lose, and the
launch script refuses a `MAX_PROMPT_LENGTH` below the longest the same way.

The run is created in the study's experiment with studykit's tags (config_hash included), params and `config.json`,
tagged `engine=verl`, and left SCHEDULED until verl's MLflow logger starts it. Nothing is written (no files, no run)
when a setting cannot be translated (the error lists every such setting) or `--out` cannot take the files. Exporting
again into one folder reuses the run of the earlier export while verl has not started it (the same config), or
deletes it (another config, or `--no-run`); a run verl started is left alone and a new one is created.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from studykit.config.schema import RunConfig
from ..tasks import get as get_task
from . import verl_plugins, verl_prompts
from . import verl_translate as tr

LAUNCH = "launch.sh"
MANIFEST = "manifest.json"
VALIDATION_DIR = "validation"


@dataclass
class Export:
    out_dir: Path
    files: list[Path]
    run_id: str | None
    n_train: int
    n_val: dict[str, int] = field(default_factory=dict)
    departures: list[str] = field(default_factory=list)


def problem_sets(cfg: RunConfig):
    """(train problems, [(eval set, task name, problems)]), loaded as studykit's trainer loads them."""
    task = get_task(cfg.data.task, **cfg.data.task_options)
    train = task.load(cfg.data.train_split)[: cfg.data.train_size]
    evals = []
    for es in cfg.eval.sets:
        t = task if es.task == cfg.data.task else get_task(es.task)
        evals.append((es, t, t.load(es.split)[: es.limit]))
    return task, train, evals


def rows(cfg: RunConfig) -> tuple[list[dict], list[dict]]:
    """The train and val records of verl's schema."""
    task, train, evals = problem_sets(cfg)
    template = cfg.data.template or task.template
    reward = tr.reward_info(cfg, evaluation=False)
    timeout = tr.verify_timeout(cfg, cfg.data.task)
    train_rows = [tr.row(p, i, task=cfg.data.task, template=template, source=tr.data_source(cfg.data.task),
                         reward=reward, split="train", timeout_s=timeout) for i, p in enumerate(train)]
    val_rows: list[dict] = []
    for es, t, problems in evals:
        tmpl = cfg.data.template if es.task == cfg.data.task and cfg.data.template else t.template
        val_rows += [tr.row(p, i, task=es.task, template=tmpl, source=tr.data_source(es.task, es.label),
                            reward=tr.reward_info(cfg, evaluation=True), split=es.label,
                            timeout_s=tr.verify_timeout(cfg, es.task)) for i, p in enumerate(problems)]
    if not train_rows:
        raise ValueError(f"data: task {cfg.data.task!r} split {cfg.data.train_split!r} has no problems to export")
    return train_rows, val_rows


def write_parquet(records: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path)


def launch_script(cfg: RunConfig, overrides: list[str], env: dict[str, str], departures: list[str],
                  prompt_limit: int, longest_prompt: int, pythonpath: list[str] | None = None) -> str:
    """The bash launch script: environment, verl's trainer with the overrides, then the import epilogue (only with
    a pre-created run: `MLFLOW_RUN_ID` in `env`). `MAX_PROMPT_LENGTH` defaults to `prompt_limit`; a value below
    `longest_prompt` stops the script before verl starts."""
    epilogue = [
        'if [ "$status" -eq 0 ]; then end=FINISHED; else end=FAILED; fi',
        '"$PYTHON" -m studykit.cli.commands import verl "$MLFLOW_RUN_ID" --dir "$HERE" --status "$end"',
    ] if "MLFLOW_RUN_ID" in env else ["# exported with --no-run: no MLflow run to import into (verl logs to the console)"]
    lines = [
        "#!/usr/bin/env bash",
        f"# Written by `studykit export verl` for run {cfg.run_name()} (config_hash {cfg.config_hash()}).",
        "# Run it where verl 0.9.1 and studykit are installed (README, Scaling out / verl). Extra arguments are more",
        "# Hydra overrides (e.g. trainer.n_gpus_per_node=4). Knobs: N_GPUS, NNODES, TP, MAX_PROMPT_LENGTH, PYTHON.",
        "# verl departs from studykit's loop here:",
        *(f"#   - {d}" for d in departures),
        "set -euo pipefail",
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        *(['# loose plug-in modules (not installed): their folders at export time, for the driver and local Ray workers',
           f'export PYTHONPATH={shlex.quote(":".join(pythonpath))}"${{PYTHONPATH:+:$PYTHONPATH}}"'] if pythonpath else []),
        'PYTHON="${PYTHON:-python3}"',
        f'MAX_PROMPT_LENGTH="${{MAX_PROMPT_LENGTH:-{prompt_limit}}}"',
        f'if [ "$MAX_PROMPT_LENGTH" -lt {longest_prompt} ]; then',
        f'  echo "MAX_PROMPT_LENGTH=$MAX_PROMPT_LENGTH is below the longest exported prompt ({longest_prompt} tokens, '
        f'manifest.json prompt_tokens): verl would drop or truncate prompts" >&2',
        "  exit 2",
        "fi",
        "status=0",
        '"$PYTHON" -m verl.trainer.main_ppo \\',
        '  data.train_files="$HERE/train.parquet" data.val_files="$HERE/val.parquet" \\',
        '  data.max_prompt_length="$MAX_PROMPT_LENGTH" trainer.n_gpus_per_node="${N_GPUS:-8}" \\',
        '  trainer.nnodes="${NNODES:-1}" actor_rollout_ref.rollout.tensor_model_parallel_size="${TP:-1}" \\',
        f'  trainer.validation_data_dir="$HERE/{VALIDATION_DIR}" \\',
        *(f"  {shlex.quote(o)} \\" for o in overrides),
        '  "$@" || status=$?',
        *epilogue,
        'exit "$status"',
    ]
    return "\n".join(lines) + "\n"


def _create_run(cfg: RunConfig, uri: str | None, manifest: dict, reuse: str | None = None) -> tuple[str, str, str]:
    """(run id, tracking uri, experiment name) of a SCHEDULED run carrying studykit's tags; `reuse`: the id of an
    earlier export's SCHEDULED run of this config, written again rather than doubled."""
    from mlflow.entities import Param, RunTag

    from studykit.tracking import experiment as tracking

    resolved = tracking.tracking_uri(uri or cfg.tracking.uri)
    experiment = cfg.tracking.experiment or cfg.study
    mlc = tracking.client(resolved)
    exp_id = tracking.experiment_id(experiment, resolved)
    tags = tracking.run_tags(cfg) | {"engine": "verl", "policy_saved": "none (verl run: checkpoints under "
                                     "trainer.default_local_dir)"}
    if reuse:
        rid = reuse
        mlc.log_batch(rid, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    else:
        rid = mlc.create_run(exp_id, tags=tags).info.run_id  # its name: the `mlflow.runName` tag of run_tags
    params = [Param(k, str(v)[:6000]) for k, v in cfg.flat().items()]
    for i in range(0, len(params), 100):
        mlc.log_batch(rid, params=params[i:i + 100])
    mlc.log_text(rid, json.dumps(cfg.model_dump(mode="json"), indent=2), "config.json")
    mlc.log_dict(rid, manifest, f"verl/{MANIFEST}")
    mlc.update_run(rid, status="SCHEDULED")
    return rid, resolved, experiment


def _check_out(out: Path) -> None:
    """Refuse an `--out` that cannot take the files, before anything reaches MLflow (a run created first and left
    SCHEDULED keeps its cell busy for every study)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder; name a new or existing folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create the folder ({err.strerror or err})") from err
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the folder is not writable")


def _earlier_run(out: Path, cfg: RunConfig, resolved: str | None) -> str | None:
    """The SCHEDULED run an earlier export to `out` created in the store `resolved` (None: --no-run), if verl has
    not started it: reused when it is of this config, else deleted, as its launch script is being replaced."""
    from mlflow.exceptions import MlflowException

    from studykit.tracking import experiment as tracking

    try:
        earlier = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    rid, uri = earlier.get("run_id"), earlier.get("tracking_uri")
    if not isinstance(rid, str) or not isinstance(uri, str) or (resolved is not None and uri != resolved):
        return None
    mlc = tracking.client(uri)
    try:
        run = mlc.get_run(rid)
    except MlflowException:
        return None
    if run.info.status != "SCHEDULED" or run.info.lifecycle_stage != "active":
        return None  # verl started it: a real attempt, left as it is
    if resolved is not None and run.data.tags.get("config_hash") == cfg.config_hash():
        return rid
    mlc.delete_run(rid)
    return None


def prompt_limit(lengths: verl_prompts.PromptLengths, given: int | None) -> int:
    """`data.max_prompt_length`: `given`, refused when a row is longer, else the measured cover."""
    if given is None:
        return lengths.limit()
    if isinstance(given, bool) or given < 1:
        raise ValueError(f"max_prompt_length: got {given!r}; expected a positive number of tokens")
    train, val = lengths.over(given)
    if train or val:
        raise ValueError(f"max_prompt_length {given} would lose {train} of {len(lengths.train)} training and {val} "
                         f"of {len(lengths.val)} evaluation prompts (longest {lengths.longest} tokens, by "
                         f"{lengths.method}); give at least {lengths.longest}, or none to cover them all")
    return given


def export(cfg: RunConfig, out_dir: str | Path, uri: str | None = None, create_run: bool = True,
           max_prompt_length: int | None = None) -> Export:
    """Write the verl hand-off of `cfg` into `out_dir` (see the module docstring); ValueError when untranslatable
    or when `max_prompt_length` is below a prompt's length."""
    out = Path(out_dir).resolve()
    checkpoint_dir = str((Path(cfg.tracking.checkpoint_dir) / f"verl-{cfg.config_hash()}").resolve())
    experiment = cfg.tracking.experiment or cfg.study
    overrides = tr.overrides(cfg, experiment=experiment, checkpoint_dir=checkpoint_dir)  # refuses first
    train_rows, val_rows = rows(cfg)
    lengths = verl_prompts.measure(cfg.model.name, train_rows, val_rows)
    limit = prompt_limit(lengths, max_prompt_length)
    departures = tr.departures(cfg)
    if not lengths.exact:
        departures.append(f"prompt lengths are an {lengths.method}: a prompt longer than data.max_prompt_length "
                          f"{limit} would be left-truncated by verl's agent loop (with a warning)")
    sources = {es.label: tr.data_source(es.task, es.label) for es in cfg.eval.sets}
    manifest = {"config": cfg.model_dump(mode="json"), "config_hash": cfg.config_hash(), "run_name": cfg.run_name(),
                "eval_sets": sources, "n_train": len(train_rows),
                "n_val": {lab: sum(r["data_source"] == src for r in val_rows) for lab, src in sources.items()},
                "departures": departures, "overrides": overrides, "prompt_tokens": lengths.manifest(limit),
                "plugins": verl_plugins.manifest(cfg)}
    _check_out(out)
    run_id, resolved, env = None, None, {}
    if create_run:
        from studykit.tracking import experiment as tracking

        reuse = _earlier_run(out, cfg, tracking.tracking_uri(uri or cfg.tracking.uri))
        run_id, resolved, experiment = _create_run(cfg, uri, manifest, reuse)
        env = {"MLFLOW_TRACKING_URI": resolved, "MLFLOW_EXPERIMENT_NAME": experiment, "MLFLOW_RUN_ID": run_id}
    else:  # no run to log into: verl would make an untagged one of its own
        _earlier_run(out, cfg, None)
        overrides = [o if not o.startswith("trainer.logger=") else "trainer.logger=[console]" for o in overrides]
    if cfg.algo.estimator in tr.CUSTOM_ESTIMATORS:
        env |= {"VERL_USE_EXTERNAL_MODULES": tr.ESTIMATORS_MODULE, tr.LAM_ENV: str(cfg.algo.lam)}
    elif verl_plugins.env(cfg):
        env |= {"VERL_USE_EXTERNAL_MODULES": tr.ESTIMATORS_MODULE, **verl_plugins.env(cfg)}
    manifest |= {"run_id": run_id, "tracking_uri": resolved, "overrides": overrides}
    files = [out / "train.parquet", out / "val.parquet", out / LAUNCH, out / MANIFEST]
    try:
        write_parquet(train_rows, files[0])
        write_parquet(val_rows, files[1])
        files[2].write_text(launch_script(cfg, overrides, env, manifest["departures"], limit, lengths.longest,
                                           verl_plugins.pythonpath(cfg)))
        files[2].chmod(0o755)
        files[3].write_text(json.dumps(manifest, indent=2))
    except BaseException:
        if run_id:  # no launch script starts it: a SCHEDULED run left behind would keep the cell busy
            from studykit.tracking import experiment as tracking

            tracking.client(resolved).delete_run(run_id)
        raise
    return Export(out, files, run_id, len(train_rows), manifest["n_val"], manifest["departures"])
