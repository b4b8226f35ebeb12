"""Study files: expand a grid of (model x task x condition x seed) cells and run each as a papermill notebook.

A study YAML (schema `StudySpec`, unknown keys are errors) names a base run file, the grid, the conditions
(each a claim of the paper with the overrides that produce it), the alignment cells, ablations and the verdict
thresholds. `expand` turns it into `Cell`s whose `RunConfig`s are all validated before anything runs, so an
invalid study or run file creates no MLflow experiment or run. Names that become paths (the study, conditions,
ablations, grid task labels, model short names, so every cell name) are safe names; a repeated key is an error;
relative `base` and notebook paths are read from the study file's folder. `run_study` executes the cells with papermill in
subprocesses (`workers` at a time, one torch thread each), in dependency order (alignment cells before the
training cells of the same model/task; the baseline ground-truth cell before the one-shot cell of the same
model/task/seed, whose `historical_variance` rule reads it), skips cells whose config hash already has a
FINISHED run (so an interrupted study resumes), records failures in `outputs/<study>/failed.json`, logs each
executed notebook to its cell's run, then runs the compare notebook and prints the verdict table. The running
part lives in `studykit.study.runner` (`run_study`, `run_one`), which imports this module, never the reverse.

Departure from the paper: the paper runs each configuration by hand with verl; the grid, the resume-by-hash and
the notebook-per-cell record are studykit's.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studykit.config.schema import ClaimCard, CompareSpec, ConfigError, RunConfig, deep_merge, load_yaml, validate
from studykit.study.executors.resources import ResourcesSpec
from studykit.config.paramfile import NAME_HINT, SAFE_NAME, CheckError, Seed, describe

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DEFAULT_NOTEBOOKS = {
    "alignment": "00_alignment.ipynb",
    "rq1": "01_reward_signal.ipynb",
    "rq2": "02_one_shot.ipynb",
    "rq3": "03_negative_samples.ipynb",
    "ablation": "01_reward_signal.ipynb",
    "compare": "10_compare.ipynb",
}


TASK_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # a safe name, or a task name such as logic:game24
CELL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # notebook and log file names under outputs/<study>/


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


def _safe_keys(pattern: str, what: str):
    """A validator: every key of a mapping (or item of a list) matches `pattern` (it becomes part of a path)."""
    def check(value: Any) -> Any:
        for key in value:
            if not isinstance(key, str) or not re.match(pattern, key):
                hint = NAME_HINT if pattern == SAFE_NAME else f"a name matching {pattern}"
                raise CheckError(f"got {what} {key!r}; expected {hint}", str(key))
        return value

    check.__doc__ = f"Each {what} is a name that can be part of a path ({pattern})."
    return check


def _model_short_names(models: dict[str, Any]) -> dict[str, Any]:
    """Each model's short name (the part after the last '/', without `toy:`) is a safe name: it is in cell names."""
    for name in models:
        if not re.match(SAFE_NAME, short_model(name)):
            raise CheckError(f"got model {name!r} (short name {short_model(name)!r}); expected a name whose "
                                    f"last part is {NAME_HINT}", name)
    return models


def _as_mapping(value: Any) -> Any:
    """A list of names becomes {name: {}}; a mapping keeps its per-entry overrides."""
    if isinstance(value, list):
        return {str(v): {} for v in value}
    return value


class GridSpec(_Spec):
    models: dict[str, dict[str, Any]] = Field(min_length=1)
    """Model names (`toy:strong`, hub ids); a mapping gives per-model overrides (deep-merged into the run)."""
    tasks: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"toy": {}}, min_length=1)
    """Task labels; a plain name sets `data.task`; a mapping gives the overrides (data and eval sets)."""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    """Training seeds."""

    _lists = field_validator("models", "tasks", mode="before")(_as_mapping)
    _models = field_validator("models")(_model_short_names)
    _tasks = field_validator("tasks")(_safe_keys(TASK_LABEL, "task label"))


class ConditionSpec(_Spec):
    rq: Literal["rq1", "rq2", "rq3"]
    """Research question of the claim."""
    claim: str | None = Field(None, pattern=SAFE_NAME)
    """Claim label in the verdict table; defaults to the condition's name."""
    notebook: str | None = None
    """Notebook to run; defaults to the study's `notebooks[rq]`."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Deep-merged into the run config after the model and task overrides."""
    card: ClaimCard | None = None
    """The claim card (text, source, predicts); None = the shipped card of the claim's name, if any. Not part of any
    run's identity: it changes what the report says, not what a cell computes."""


class AlignmentSpec(_Spec):
    models: list[str] | None = None
    """Models to measure (None = every grid model)."""
    tasks: list[str] | None = None
    """Task labels from the grid (None = every grid task)."""
    seed: Seed = 0
    """Sampling seed."""
    notebook: str | None = None
    """Defaults to `notebooks.alignment`."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Its own overrides (e.g. more samples and larger k)."""


class AblationSpec(_Spec):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
    """Label (letters, digits, `_` and `.`, first a letter or digit): part of cell names and of the `condition` tag
    (`<condition>@<name>`)."""
    models: list[str] | None = None
    """Grid models (None = all)."""
    conditions: list[str]
    """Conditions from `conditions` to repeat under the overrides."""
    seeds: list[Seed] | None = Field(None, min_length=1)
    """None = the grid seeds."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Deep-merged last."""


class StudySpec(_Spec):
    name: str = Field(pattern=SAFE_NAME)
    """Study name: MLflow experiment, `outputs/<name>/`, `reports/<name>/`."""
    base: str
    """Run YAML every cell starts from (relative to the study file's folder)."""
    notebooks: dict[str, str] = Field(default_factory=dict)
    """rq -> notebook (relative to the study file's folder; defaults: the repository's notebooks/)."""
    baseline: str = "ground_truth"
    """Condition that every claim is compared with (runs first for its model/task/seed)."""
    grid: GridSpec
    conditions: dict[str, ConditionSpec] = Field(min_length=1)
    alignment: AlignmentSpec | None = None
    ablations: list[AblationSpec] = Field(default_factory=list)
    compare: CompareSpec = Field(default_factory=CompareSpec)
    resources: ResourcesSpec | None = None
    """What each cell reserves on a Ray cluster (`--executor ray`; see studykit.study.executors.resources); the local
    executor runs `--workers` cells at once instead, each with its `train.threads`."""

    _conditions = field_validator("conditions")(_safe_keys(SAFE_NAME, "condition"))

    @field_validator("notebooks")
    @classmethod
    def _known_rqs(cls, notebooks: dict[str, str]) -> dict[str, str]:
        """Keys are the notebook roles (alignment, rq1, rq2, rq3, ablation, compare): another key would be ignored."""
        for key in notebooks:
            if key not in DEFAULT_NOTEBOOKS:
                raise CheckError(f"got {key!r}; expected one of {', '.join(DEFAULT_NOTEBOOKS)}", key)
        return notebooks

    def cards(self) -> dict[str, ClaimCard]:
        """{claim label: card} of the conditions that carry their own card (the rest use the shipped ones)."""
        return {cond.claim or name: cond.card for name, cond in self.conditions.items() if cond.card is not None}

    @model_validator(mode="after")
    def _names_defined(self) -> "StudySpec":
        """The baseline and every ablation's conditions are defined conditions; alignment tasks are grid tasks."""
        known = ", ".join(self.conditions)
        if self.baseline not in self.conditions:
            raise CheckError(f"got {self.baseline!r}; expected one of the conditions {known}", "baseline")
        for i, abl in enumerate(self.ablations):
            for name in abl.conditions:
                if name not in self.conditions:
                    raise CheckError(f"got {name!r}; expected one of the conditions {known}",
                                            f"ablations.{i}.conditions")
        for task in (self.alignment.tasks or []) if self.alignment else []:
            if task not in self.grid.tasks:
                raise CheckError(f"got {task!r}; expected grid task labels {', '.join(self.grid.tasks)}",
                                        "alignment.tasks")
        for axis, members in self.compare.axes.items():
            for model in members:
                if model not in self.grid.models:
                    raise CheckError(f"got {model!r}; expected grid model keys {', '.join(self.grid.models)}",
                                     f"compare.axes.{axis}")
        return self


@dataclass
class Cell:
    """One notebook execution: its name, notebook, validated config, papermill parameters and predecessors."""

    name: str
    notebook: Path
    config: RunConfig
    params: dict[str, Any]
    after: list[str] = field(default_factory=list)


def is_study(data: dict[str, Any]) -> bool:
    """Whether a params mapping is a study file (StudySpec keys) rather than a run file (RunConfig keys)."""
    study, run = set(data) & set(StudySpec.model_fields), set(data) & set(RunConfig.model_fields)
    if study and run:
        raise ConfigError(f"the file mixes study keys {sorted(study)} and run keys {sorted(run)}; a study file puts "
                          "run settings in its base file and overrides")
    return bool(study)


def load_spec(study_file: str | Path) -> StudySpec:
    """Read and validate a study YAML; raises ConfigError naming the bad fields."""
    try:
        return StudySpec.model_validate(load_yaml(study_file))
    except ValidationError as err:
        raise ConfigError(describe(err, f"invalid study ({study_file}):", StudySpec)) from None


def short_model(name: str) -> str:
    return name.replace("toy:", "").split("/")[-1]


def _notebook(spec: StudySpec, here: Path, rq: str, explicit: str | None) -> Path:
    """The notebook of role `rq`: `explicit`, else `notebooks.<rq>` (relative to the study file's folder), else the
    repository's default."""
    rel = explicit or spec.notebooks.get(rq)
    path = (here.parent / rel).resolve() if rel else NOTEBOOKS / DEFAULT_NOTEBOOKS[rq]
    if not path.is_file():
        field = "a condition's notebook" if explicit else f"notebooks.{rq}"
        raise ConfigError(f"{here}: {field}: got {rel!r}; expected a notebook file relative to the study file's "
                          f"folder {here.parent.resolve()} ({path} does not exist)")
    return path


def _task_overrides(label: str, extra: dict[str, Any]) -> dict[str, Any]:
    return deep_merge({"data": {"task": label}}, extra) if not extra else extra


def _make_cell(spec, here, base, name, rq, notebook, layers, after) -> Cell:
    merged = dict(base)
    for layer in layers:
        merged = deep_merge(merged, layer)
    cfg = validate(merged, source=f"{here} cell {name}")
    return Cell(name, notebook, cfg, cfg.model_dump(mode="json"), after)


def _labels(name: str, rq: str, claim: str, condition: str, seed: int) -> dict[str, Any]:
    return {"study": name, "rq": rq, "claim": claim, "condition": condition, "train": {"seed": seed}}


def _alignment_cells(spec, here, base) -> list[Cell]:
    a = spec.alignment
    if a is None:
        return []
    nb = _notebook(spec, here, "alignment", a.notebook)
    cells = []
    for model in a.models or list(spec.grid.models):
        for task in a.tasks or list(spec.grid.tasks):  # alignment.tasks are grid tasks (StudySpec checks)
            name = f"alignment-{short_model(model)}-{task}"
            layers = [*_model_layers(spec, model),
                      _task_overrides(task, spec.grid.tasks[task]), a.overrides,
                      _labels(spec.name, "alignment", "alignment", "alignment", a.seed)]
            cells.append(_make_cell(spec, here, base, name, "alignment", nb, layers, []))
    return cells


def _train_cell(spec, here, base, cond_name, model, task, seed, ablation=None) -> Cell:
    if cond_name not in spec.conditions:
        raise ConfigError(f"{here}: condition {cond_name!r} is not defined (known: {list(spec.conditions)})")
    cond = spec.conditions[cond_name]
    claim = cond.claim or cond_name
    rq, condition, prefix, extra = cond.rq, cond_name, "", {}
    if ablation is not None:
        rq, condition, prefix = "ablation", f"{cond_name}@{ablation.name}", f"{ablation.name}-"
        extra = ablation.overrides
    nb = _notebook(spec, here, cond.rq, cond.notebook)
    name = f"{prefix}{cond_name}-{short_model(model)}-{task}-s{seed}"
    after = [f"alignment-{short_model(model)}-{task}"]
    if cond_name != spec.baseline:
        after.append(_baseline_name(spec, model, task, seed, ablation))
    layers = [*_model_layers(spec, model),
              _task_overrides(task, spec.grid.tasks[task]), cond.overrides, extra,
              _labels(spec.name, rq, claim, condition, seed)]
    cell = _make_cell(spec, here, base, name, rq, nb, layers, after)
    shot = cell.config.data.one_shot
    if (cell.config.data.selection == "one_shot" and shot.rule == "historical_variance" and not shot.source_run
            and not shot.source_config_hash):  # pin the one full-data run its example is ranked from
        own = ablation if ablation is not None and spec.baseline in ablation.conditions else None
        source = _train_cell(spec, here, base, spec.baseline, model, task, seed, own)
        pin = {"data": {"one_shot": {"source_config_hash": source.config.config_hash()}}}
        cell = _make_cell(spec, here, base, name, rq, nb, [*layers, pin], after)
    return cell


def _model_layers(spec, model: str) -> list[dict[str, Any]]:
    """The grid key as `model.name`, the key's overrides, and the key as `model.label` when the overrides name
    another model (levels of `toy:custom` on an alignment axis: `method-30: {model: {name: toy:custom, toy: ...}}`)."""
    overrides = spec.grid.models.get(model, {})
    name = (overrides.get("model") or {}).get("name", model)
    return [{"model": {"name": model}}, overrides, {"model": {"label": model}} if name != model else {}]


def _baseline_name(spec, model, task, seed, ablation) -> str:
    """The baseline cell a claim is compared with: the ablation's own when it repeats the baseline, else the grid's."""
    prefix = f"{ablation.name}-" if ablation is not None and spec.baseline in ablation.conditions else ""
    return f"{prefix}{spec.baseline}-{short_model(model)}-{task}-s{seed}"


def expand(study_file: str | Path) -> list[Cell]:
    """Every cell of the study, validated, baseline cells before the others; raises ConfigError on any problem."""
    here = Path(study_file)
    spec = load_spec(here)
    base_path = (here.parent / spec.base).resolve()
    if not base_path.is_file():
        raise ConfigError(f"{here}: base: got {spec.base!r}; expected a run YAML relative to the study file's folder "
                          f"{here.parent.resolve()} ({base_path} does not exist)")
    base = load_yaml(base_path)
    validate(base, source=str(base_path))
    _notebook(spec, here, "compare", None)  # the compare notebook runs last: a bad path must not wait for it
    cells = _alignment_cells(spec, here, base)
    order = [spec.baseline] + [c for c in spec.conditions if c != spec.baseline]
    for model in spec.grid.models:
        for task in spec.grid.tasks:
            for seed in spec.grid.seeds:
                cells += [_train_cell(spec, here, base, c, model, task, seed) for c in order]
    for abl in spec.ablations:
        for model in abl.models or list(spec.grid.models):
            for task in spec.grid.tasks:
                for seed in abl.seeds or spec.grid.seeds:
                    conds = sorted(abl.conditions, key=lambda c: c != spec.baseline)
                    cells += [_train_cell(spec, here, base, c, model, task, seed, abl) for c in conds]
    return _check_unique(cells, here)


def _check_unique(cells: list[Cell], here: Path) -> list[Cell]:
    names = {c.name for c in cells}
    seen: dict[str, str] = {}
    for c in cells:
        if not re.match(CELL_NAME, c.name):
            raise ConfigError(f"{here}: cell name {c.name!r} is not a safe file name (expected {CELL_NAME}); rename "
                              "the model, task label or condition it is made of")
        c.after = [a for a in c.after if a in names]
        h = c.config.config_hash()
        if h in seen:
            raise ConfigError(f"{here}: cells {seen[h]!r} and {c.name!r} have the same config (hash {h}); "
                              "give them different overrides")
        seen[h] = c.name
    if len(names) != len(cells):
        raise ConfigError(f"{here}: duplicate cell names (a model, task or seed is listed twice)")
    return cells


def select(cells: list[Cell], only: str | None) -> list[Cell]:
    """Cells whose name matches the glob `only` (a plain word matches as a substring); predecessors outside
    the selection are dropped from `after` (the ordering only holds inside one invocation)."""
    if not only:
        return cells
    pattern = only if any(ch in only for ch in "*?[") else f"*{only}*"
    chosen = [c for c in cells if fnmatch.fnmatch(c.name, pattern)]
    if not chosen:
        raise ConfigError(f"--only {only!r} matches no cell; cells are: {', '.join(c.name for c in cells[:8])} ...")
    names = {c.name for c in chosen}
    for c in chosen:
        c.after = [a for a in c.after if a in names]
    return chosen
