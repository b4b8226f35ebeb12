"""Running a study: dependency order, claims, failures, signals, the compare step, the exit code.

`run_study(path, workers, only, dry_run)` executes the cells of `studykit.study.spec.expand` (see that module for the
study schema) through an executor (`studykit.study.executors`; `local` runs each cell as a papermill subprocess that
cannot outlive the study); `run_one(notebook, params_file)` runs one cell. The executed notebook goes to
`outputs/<study>/<cell>.ipynb` and is logged as an artifact (`notebook/`) to the cell's run, found by its
config_hash tag.

Guarantees (`studykit.study.claims` has the details):
* A cell is finished when a FINISHED run of its config hash has its notebook in the store; finished cells are
  skipped. Every other cell runs under its claim (an exclusive lock per config hash), so any number of study
  processes, of the same or different studies, on one store run each cell once: a second process waits for the
  claim and then skips the cell the first finished. A finished cell whose run another code version made (tag
  `code_version`, studykit.tracking.provenance) is reused with a warning line counting them; `rerun_stale` (`--rerun-stale`)
  runs it again instead.
* After a kill of any process at any moment, the same command repairs the store under the claims: stale RUNNING
  runs are marked KILLED (or resumed by the trainer from their checkpoint), a FINISHED run that lost its notebook
  gets it back, and the study ends with one FINISHED run per cell, each with its notebook, and the verdict table.
* SIGINT, SIGTERM and SIGHUP stop launching, interrupt the running cells (SIGINT, then SIGTERM, then SIGKILL) and
  mark their runs KILLED; on SIGKILL the children die with the study process (parent-death signal).
* The exit code is 0 only when every cell is finished and the compare step succeeded: 1 when a cell failed (its
  notebook raised, or its run ended FAILED, or it produced no run) or the compare step failed, 130 when
  interrupted; a study that expands to no cells is a ConfigError (exit 2 from the CLI). Failures are written to
  `outputs/<study>/failed.json` (and every outcome to `summary.json`), replaced atomically. A full disk stops the
  study with one line naming the path (`studykit.infra.diskfull.DiskFull`, exit 1 from the CLI) once the running cells
  end; the parent run is closed FAILED with that line and what finished is kept for the rerun. So does a tracking
  server that stops answering for longer than the MLflow client retries (`studykit.infra.outage.ServerDown`).
* The study has one parent run in MLflow (`tracking.study_run`, tag `rq=study`, found again by every rerun): each
  cell's run is its child (`tracking.parent_run` in the cell's parameters becomes `mlflow.parentRunId`), the compare
  step logs the report into it, and its status is the study's last outcome (RUNNING while a study process runs it,
  then FINISHED, FAILED or KILLED by the exit code). `run_one` (`studykit run`) makes no parent.
* The compare step runs under the study's `compare` claim (one at a time per store); report runs left RUNNING by a
  killed compare are marked KILLED first.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from studykit.study import claims
from studykit.config.schema import ConfigError, load_yaml
from studykit.infra.diskfull import DiskFull, full_path, message
from studykit.study.executors import Executor, make
from studykit.infra.outage import ServerDown, server_down
from studykit.study.outcomes import (  # noqa: F401 (public here too)
    CellOutcome, StudySummary, _write_failures, _write_json, error_line, format_summary,
)
from studykit.study.spec import Cell, StudySpec, _notebook, expand, load_spec, select
from studykit.tracking.server_auth import check_login

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def resolve_uri(uri: str | None = None) -> str:
    from studykit.tracking.experiment import tracking_uri

    return tracking_uri(uri)


@dataclass
class _Context:
    out_dir: Path
    uri: str
    executor: Executor
    stop: threading.Event
    require_version: str | None = None  # --rerun-stale: a FINISHED run of other code does not finish a cell
    builds: object | None = None  # the toy-build stage's BuildRunner while it exists (stopped with the executor)

    @classmethod
    def make(cls, out_dir: Path, uri: str, executor: str = "local", **options) -> "_Context":
        return cls(out_dir, uri, make(executor, out_dir, uri, **options), threading.Event())


def _waiting(name: str):
    return lambda holder: print(f"{name}: claimed by {holder or 'another process'}; waiting", file=sys.stderr)


def _run_cell(ctx: _Context, cell: Cell) -> CellOutcome:
    t0 = time.time()
    if ctx.stop.is_set():
        return CellOutcome(cell.name, "interrupted", error="not started: the study was interrupted")
    cfg = cell.config
    with claims.claim(ctx.uri, claims.experiment_of(cfg), cfg.config_hash(), ctx.stop.is_set,
                      _waiting(cell.name)) as held:
        if not held:
            return CellOutcome(cell.name, "interrupted", error="not started: the study was interrupted")
        out_nb = ctx.out_dir / f"{cell.name}.ipynb"
        probe = getattr(ctx.executor, "owner_state", None)  # asks a remote run owner's own host (executors/ray)
        settled = claims.settle(cfg, ctx.uri, out_nb, probe=probe, require_version=ctx.require_version)
        if settled.state != "todo":
            status = "skipped" if settled.state == "done" else "failed"
            return CellOutcome(cell.name, status, settled.run_id, settled.note or None, time.time() - t0)
        since, token = time.time() - 1.0, uuid.uuid4().hex
        rc, tail = ctx.executor.run(cell.name, cell.notebook, claims.with_token(cell.params, token), out_nb)
        run_id, status = claims.conclude(cfg, ctx.uri, out_nb, rc, since, ctx.stop.is_set(), probe=probe,
                                         token=token if "tracking" in cell.params else None)
    return _outcome(ctx, cell, rc, tail, run_id, status, time.time() - t0)


def _outcome(ctx: _Context, cell: Cell, rc: int, tail: str, run_id: str | None, status: str,
             seconds: float) -> CellOutcome:
    if ctx.stop.is_set() and (rc != 0 or status != "FINISHED"):
        return CellOutcome(cell.name, "interrupted", run_id, "interrupted", seconds)
    if rc != 0:
        return CellOutcome(cell.name, "failed", run_id, tail or f"papermill exited with {rc}", seconds)
    if run_id is None:
        return CellOutcome(cell.name, "failed", None, f"the notebook logged no run with config_hash "
                                                      f"{cell.config.config_hash()}", seconds)
    if status != "FINISHED":
        return CellOutcome(cell.name, "failed", run_id, f"run {run_id} ended {status}", seconds)
    return CellOutcome(cell.name, "done", run_id, None, seconds)


def _schedule(ctx: _Context, cells: list[Cell], workers: int, progress: bool, study: str = "",
              skipped: int = 0) -> list[CellOutcome]:
    """Run `cells` (and first the toy builds they need) `workers` at a time in dependency order."""
    from studykit.study.executors.builds import BuildRunner, toy_builds
    from studykit.study.progress import StudyProgress

    builds = toy_builds(cells)
    needs = {cell: label for label, b in builds.items() for cell in b.cells}
    queued_builds = list(builds)
    runner = ctx.builds = BuildRunner(ctx.out_dir)
    pending = {c.name: c for c in cells}
    finished: set[str] = set()
    outcomes: dict[str, CellOutcome] = {}
    bar = StudyProgress(study, len(cells), workers, builds, enabled=progress, skipped=skipped)
    running: dict[Future, str] = {}

    def launch(name: str, fn, *args) -> None:
        running[pool.submit(fn, *args)] = name
        bar.start(name)

    def ready(c: Cell) -> bool:
        return all(a in finished for a in c.after) and needs.get(c.name, "") not in builds.keys() - finished

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while pending or running or queued_builds:
            if not ctx.stop.is_set():
                while queued_builds and len(running) < workers:  # builds first: cells wait for them
                    label = queued_builds.pop(0)
                    launch(label, runner.run, builds[label])
                for name in [n for n, c in pending.items() if ready(c)]:
                    if len(running) >= workers:
                        break
                    launch(name, _run_cell, ctx, pending.pop(name))
            if ctx.stop.is_set() and not running:
                break
            if not running:  # only cells whose predecessors are outside this run: release them
                name = next(iter(pending))
                launch(name, _run_cell, ctx, pending.pop(name))
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                finished.add(name)
                if name in builds:
                    fut.result()
                    bar.finish(name)
                    if builds[name].error:
                        print(f"toy build {name} failed (its cells will try it again; log: "
                              f"{ctx.out_dir / 'logs'}):\n{builds[name].error}", file=sys.stderr)
                    continue
                outcomes[name] = fut.result()
                bar.finish(name, outcomes[name].status, outcomes[name].seconds)
            bar.tick()
    bar.close()
    for name in pending:
        outcomes[name] = CellOutcome(name, "interrupted", error="not started: the study was interrupted")
    return [outcomes[c.name] for c in cells]


def _compare(ctx: _Context, spec: StudySpec, here: Path) -> tuple[str, str | None]:
    """(verdict table, None) or ("", why the compare step failed)."""
    nb = _notebook(spec, here, "compare", spec.notebooks.get("compare"))
    params = {"study_file": str(here.resolve()), "uri": ctx.uri, "thresholds": spec.compare.model_dump()}
    with claims.claim(ctx.uri, spec.name, "compare", ctx.stop.is_set, _waiting("compare")) as held:
        if not held:
            return "", "compare not run: the study was interrupted"
        try:
            claims.reap_reports(spec.name, ctx.uri)
        except RuntimeError as err:  # a live compare of another study process owns a report run
            return "", str(err)
        runner = getattr(ctx.executor, "on_driver", ctx.executor)  # the report is written on this machine
        rc, tail = runner.run("10_compare", nb, params, ctx.out_dir / "10_compare.ipynb")
    md = Path("reports") / spec.name / "verdicts.md"
    if rc != 0:
        return "", f"compare notebook failed (see {ctx.out_dir / 'logs' / '10_compare.log'}):\n{tail}"
    return (md.read_text(), None) if md.is_file() else ("", f"the compare notebook wrote no {md}")


def run_study(path: str | Path, workers: int | None = 2, only: str | None = None, dry_run: bool = False,
              uri: str | None = None, progress: bool = True, compare: bool = True, executor: str = "local",
              address: str | None = None, rerun_stale: bool = False) -> StudySummary:
    """Run every (selected) cell of a study; see the module docstring. Returns the per-cell outcomes.
    `executor`: "local" (process pool) or "ray" (one Ray task per cell at `address`; `studykit.study.executors.ray`).
    Finished cells whose run has another `code_version` than this process (studykit.tracking.provenance) are reused with a
    warning; `rerun_stale` runs them again (a new run; the old one stays FINISHED, the newest counts)."""
    here = Path(path)
    spec = load_spec(here)
    cells = select(expand(here), only)  # everything validated before any MLflow call
    if not cells:
        raise ConfigError(f"{here}: the study expands to no cells (grid.models, grid.tasks, grid.seeds or "
                          "conditions is empty)")
    if dry_run:
        return StudySummary(spec.name, [CellOutcome(c.name, "planned") for c in cells])
    check_login(resolve_uri(uri))  # a refused login fails here, before any cell (tracking.server_auth)
    workers = workers or (len(cells) if executor == "ray" else 2)  # ray: the cluster's resources pace the cells
    options = _executor_options(executor, spec, address)
    ctx = _Context.make(Path("outputs") / spec.name, resolve_uri(uri), executor, **options)
    todo, outcomes = [], {}
    for c in cells:
        rid = claims.finished_run(c.config, ctx.uri)
        if rid:
            outcomes[c.name] = CellOutcome(c.name, "skipped", rid)
        else:
            todo.append(c)
    todo += _stale_cells(ctx, cells, outcomes, rerun_stale)
    result = {"verdicts": ("", None)}
    started = time.time()
    parent = _open_parent(ctx, spec, cells)
    _adopt(ctx, parent, [o.run_id for o in outcomes.values() if o.run_id])
    for c in todo:
        c.params = _cell_params(c, parent)

    def body() -> None:
        outcomes.update({o.name: o for o in _schedule(ctx, _drop_done(todo, outcomes), workers, progress,
                                                      spec.name, len(outcomes))})
        _write_failures(ctx.out_dir, [outcomes[c.name] for c in cells])
        if compare and not ctx.stop.is_set():
            t_compare = time.time()
            result["verdicts"] = _compare(ctx, spec, here)
            result["compare_s"] = time.time() - t_compare
        _write_timing(ctx, started, workers, result.get("compare_s"))

    try:
        interrupted = _with_signals(ctx, body)
    except BaseException as err:
        # a full disk or a server that stopped answering is told in one line, which closes the parent run
        full = full_path(err, ctx.uri)
        down = None if full else server_down(err, ctx.uri)
        reason = message(full) if full else down or f"the study process failed: {type(err).__name__}: {err}"
        try:
            _close_parent(ctx, parent, "FAILED", reason)
        except Exception:
            if not (full or down):
                raise
            print("(the study's run stays RUNNING: its store cannot be written now; a rerun reopens it)",
                  file=sys.stderr)
        if full or down:
            raise (DiskFull if full else ServerDown)(reason) from err
        raise
    verdicts, error = result["verdicts"]
    summary = StudySummary(spec.name, [outcomes[c.name] for c in cells], verdicts, interrupted, error)
    _close_parent(ctx, parent, {0: "FINISHED", 130: "KILLED"}.get(summary.exit_code, "FAILED"),
                  format_summary(summary).splitlines()[0])
    return summary


def _stale_cells(ctx: _Context, cells: list[Cell], outcomes: dict[str, CellOutcome], rerun: bool) -> list[Cell]:
    """Warn about finished cells run by other code; with `rerun`, take them out of `outcomes` and return them."""
    from studykit.tracking.provenance import code_version, stale, stale_warning
    from studykit.tracking.experiment import client

    current = code_version()
    names = stale(client(ctx.uri), {n: o.run_id for n, o in outcomes.items() if o.run_id}, current)
    if names:
        print(stale_warning(names, current, rerun), file=sys.stderr)
    if not rerun:
        return []
    ctx.require_version = current
    for name in names:
        del outcomes[name]
    return [c for c in cells if c.name in names]


def _open_parent(ctx: _Context, spec: StudySpec, cells: list[Cell]) -> str:
    """The study's parent run (made once, reused by every rerun), RUNNING and owned by this process."""
    from studykit.analysis.runs import experiments_of
    from studykit.tracking.experiment import client, owner_tags, study_run

    experiment = experiments_of([c.config for c in cells], spec.name)[0]
    with claims.claim(ctx.uri, experiment, "study-run"):  # drivers on other machines: one parent run, not two
        run_id = study_run(spec.name, experiment, ctx.uri)
    mlc = client(ctx.uri)
    mlc.update_run(run_id, status="RUNNING")
    for key, value in owner_tags().items():
        mlc.set_tag(run_id, key, value)
    return run_id


def _adopt(ctx: _Context, parent: str, run_ids: list[str]) -> None:
    """Finished cell runs made before the study had a parent run (older code, `studykit run`) become its children."""
    from studykit.tracking.experiment import client

    mlc = client(ctx.uri)
    for run_id in run_ids:
        if "mlflow.parentRunId" not in mlc.get_run(run_id).data.tags:
            mlc.set_tag(run_id, "mlflow.parentRunId", parent)


def _close_parent(ctx: _Context, run_id: str, status: str, reason: str) -> None:
    """The study's outcome on its run: the status and, as `status_reason`, the summary line ("study toy: done 3").
    A parent another live study process reopened after this one (owner tags) and still RUNNING is that process's
    to end."""
    from studykit.tracking.experiment import client, owner_state, owner_tags

    mlc = client(ctx.uri)
    run = mlc.get_run(run_id)
    mine = all(run.data.tags.get(k) == v for k, v in owner_tags().items())
    if not mine and run.info.status == "RUNNING" and owner_state(run.data.tags) != "gone":
        return
    mlc.set_tag(run_id, "status_reason", reason[:500])
    mlc.set_terminated(run_id, status)


def _source_name(notebook: Path) -> str:
    """The notebook as a user finds it: relative to the working directory when under it."""
    try:
        return str(Path(notebook).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(notebook)


def _cell_params(cell: Cell, parent: str | None) -> dict:
    """The cell's papermill parameters with its MLflow lineage: its notebook as source, the study's run as parent."""
    params = dict(cell.params)
    if "tracking" in params:  # run notebooks (their parameters mirror RunConfig)
        params["tracking"] = dict(params["tracking"], parent_run=parent, source_name=_source_name(cell.notebook))
    return params


def _executor_options(executor: str, spec: StudySpec, address: str | None) -> dict:
    if executor == "ray":
        return {"address": address, "resources": spec.resources}
    if address:
        raise ConfigError(f"--address {address!r} is for --executor ray (the local executor runs on this machine)")
    if spec.resources is not None:
        print(f"note: the study's `resources:` block applies to --executor ray; the local executor runs {spec.name}'s "
              "cells --workers at a time", file=sys.stderr)
    return {}


def _write_timing(ctx: _Context, started: float, workers: int, compare_s: float | None) -> None:
    """`outputs/<study>/timing.json`: this invocation's wall time, workers, toy builds and compare step (read by
    bench/study_time.py with the cells' seconds from summary.json and their runs' time/ metrics)."""
    builds = ctx.builds.records() if ctx.builds is not None else []
    _write_json(ctx.out_dir / "timing.json", {"started": started, "wall_s": round(time.time() - started, 2),
                                               "workers": workers, "builds": builds, "compare_s": compare_s,
                                               "warm_kernels": getattr(ctx.executor, "zygote", None) is not None})


def _drop_done(todo: list[Cell], done: dict[str, CellOutcome]) -> list[Cell]:
    for c in todo:
        c.after = [a for a in c.after if a not in done]
    return todo


def _with_signals(ctx: _Context, body) -> bool:
    """Run body; on SIGINT, SIGTERM or SIGHUP stop launching and stop the children. Returns whether it was
    interrupted."""
    if threading.current_thread() is not threading.main_thread():
        try:
            _warm(ctx)
            body()
        finally:
            _close(ctx)
        return ctx.stop.is_set()

    def handler(signum, frame):
        if not ctx.stop.is_set():
            print(f"\n{signal.Signals(signum).name}: stopping the running cells (their runs are marked KILLED)...",
                  file=sys.stderr)
            ctx.stop.set()
            threading.Thread(target=ctx.executor.stop, daemon=True).start()
            if ctx.builds is not None:
                threading.Thread(target=ctx.builds.stop, daemon=True).start()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        _warm(ctx)
        body()
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)
        _close(ctx)
    return ctx.stop.is_set()


def _warm(ctx: _Context) -> None:
    """Let the executor start what makes cells start faster (the local executor's warm-kernel zygote)."""
    getattr(ctx.executor, "warm", lambda: None)()


def _close(ctx: _Context) -> None:
    getattr(ctx.executor, "close", lambda: None)()


def _is_run_notebook(notebook: Path) -> bool:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return bool(params) and "\nmodel = " in "\n" + params[0].source


def run_one(notebook: str | Path, params_file: str | Path, uri: str | None = None) -> CellOutcome:
    """Run one notebook with one params file. Run notebooks get the full validated config (an invalid file raises
    ConfigError before anything is created); other notebooks (10_compare) get the YAML as it is."""
    from studykit.config.schema import load

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ConfigError(f"notebook not found: {notebook}")
    if _is_run_notebook(notebook):
        cfg = load(params_file)
        cell = Cell(cfg.run_name(), notebook.resolve(), cfg, cfg.model_dump(mode="json"))
        cell.params = _cell_params(cell, cfg.tracking.parent_run)  # no study: no parent unless the file names one
        check_login(resolve_uri(uri or cfg.tracking.uri))
        ctx = _Context.make(Path("outputs") / cfg.study, resolve_uri(uri or cfg.tracking.uri))
        box: list[CellOutcome] = []
        _with_signals(ctx, lambda: box.append(_run_cell(ctx, cell)))
        return box[0]
    params = load_yaml(params_file)
    ctx = _Context.make(Path("outputs") / str(params.get("study", "adhoc")), resolve_uri(uri))
    try:
        _warm(ctx)
        rc, tail = ctx.executor.run(notebook.stem, notebook.resolve(), params, ctx.out_dir / notebook.name)
    finally:
        _close(ctx)
    return CellOutcome(notebook.stem, "done" if rc == 0 else "failed", None, tail if rc else None)
