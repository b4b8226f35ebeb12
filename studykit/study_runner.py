"""Running a study: papermill subprocesses, dependency order, skip-by-hash, failures, SIGINT, the compare step.

`run_study(path, workers, only, dry_run)` executes the cells of `studykit.study.expand` (see that module for the
study schema); `run_one(notebook, params_file)` runs one cell. Each cell is `python -m papermill NB OUT -f params.yaml
-k python3 --cwd <cwd> --log-output` in its own process group with OMP_NUM_THREADS=1, MKL_NUM_THREADS=1,
TOKENIZERS_PARALLELISM=false and MLFLOW_TRACKING_URI set; the executed notebook goes to `outputs/<study>/<cell>.ipynb`
and is logged as an artifact (`notebook/`) to the cell's run, found by its config_hash tag. A cell whose config hash
already has a FINISHED run is skipped; failures are written to `outputs/<study>/failed.json` and the rest go on.
SIGINT stops launching, interrupts the children (SIGINT, then SIGTERM, then SIGKILL) and marks their runs KILLED.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, RunConfig, load_yaml
from .study import Cell, StudySpec, _notebook, expand, load_spec, select

CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def resolve_uri(uri: str | None = None) -> str:
    from .tracking import tracking_uri

    return tracking_uri(uri)


def find_cell_run(cfg: RunConfig, uri: str, status: str | None = "FINISHED") -> str | None:
    """Latest run of the study's experiment tagged with this config hash (and status); never creates anything."""
    from .tracking import find_runs

    runs = find_runs(cfg, (status,) if status else None, uri=uri)
    return runs[0].info.run_id if runs else None


@dataclass
class CellOutcome:
    name: str
    status: str  # "done" | "skipped" | "failed" | "interrupted" | "planned"
    run_id: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class StudySummary:
    study: str
    outcomes: list[CellOutcome]
    verdicts: str = ""
    interrupted: bool = False

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "interrupted")]

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed else 0)


class _Runner:
    """Launches papermill subprocesses, remembers them so SIGINT can stop them all."""

    def __init__(self, out_dir: Path, uri: str):
        self.out_dir, self.uri = out_dir, uri
        self.stop = threading.Event()
        self.procs: dict[str, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def env(self) -> dict[str, str]:
        env = dict(os.environ, **CHILD_ENV, MLFLOW_TRACKING_URI=self.uri)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the kernel's `python`
        return env

    def papermill(self, key: str, notebook: Path, params: dict[str, Any], out_nb: Path) -> tuple[int, str]:
        pfile = self.out_dir / "params" / f"{key}.yaml"
        log = self.out_dir / "logs" / f"{key}.log"
        for p in (pfile, log, out_nb):
            p.parent.mkdir(parents=True, exist_ok=True)
        pfile.write_text(yaml.safe_dump(params, sort_keys=False))
        cmd = [sys.executable, "-m", "papermill", str(notebook), str(out_nb), "-f", str(pfile), "-k", "python3",
               "--cwd", str(Path.cwd()), "--no-progress-bar", "--log-output"]
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
            with self.lock:
                self.procs[key] = proc
            rc = proc.wait()
            with self.lock:
                self.procs.pop(key, None)
        return rc, _error_tail(log)

    def terminate_all(self, grace: float = 10.0) -> None:
        with self.lock:
            procs = list(self.procs.values())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            live = [p for p in procs if p.poll() is None]
            for p in live:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.time() + grace
            while any(p.poll() is None for p in live) and time.time() < deadline:
                time.sleep(0.2)


def _error_tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.is_file() else []
    marks = [i for i, line in enumerate(text) if "Error" in line or "Exception" in line]
    start = max(0, marks[-1] - lines + 3) if marks else max(0, len(text) - lines)
    return "\n".join(text[start:start + lines])


def _run_cell(runner: _Runner, cell: Cell) -> CellOutcome:
    t0 = time.time()
    if runner.stop.is_set():
        return CellOutcome(cell.name, "interrupted", error="not started: the study was interrupted")
    out_nb = runner.out_dir / f"{cell.name}.ipynb"
    rc, tail = runner.papermill(cell.name, cell.notebook, cell.params, out_nb)
    run_id = find_cell_run(cell.config, runner.uri, status=None)
    if run_id and out_nb.is_file():
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=runner.uri).log_artifact(run_id, str(out_nb), artifact_path="notebook")
    if runner.stop.is_set() and rc != 0:
        _mark_killed(runner.uri, run_id)
        return CellOutcome(cell.name, "interrupted", run_id, "interrupted", time.time() - t0)
    if rc != 0:
        return CellOutcome(cell.name, "failed", run_id, tail or f"papermill exited with {rc}", time.time() - t0)
    return CellOutcome(cell.name, "done", run_id, None, time.time() - t0)


def _mark_killed(uri: str, run_id: str | None) -> None:
    if not run_id:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status="KILLED")


def _schedule(runner: _Runner, cells: list[Cell], workers: int, progress: bool) -> list[CellOutcome]:
    from tqdm.auto import tqdm

    pending = {c.name: c for c in cells}
    finished: set[str] = set()
    outcomes: dict[str, CellOutcome] = {}
    bar = tqdm(total=len(cells), desc="study", disable=not progress)
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while pending or running:
            if not runner.stop.is_set():
                for name in [n for n, c in pending.items() if all(a in finished for a in c.after)]:
                    if len(running) >= workers:
                        break
                    running[pool.submit(_run_cell, runner, pending.pop(name))] = name
            if runner.stop.is_set() and not running:
                break
            if not running:  # only cells whose predecessors are outside this run: release them
                name = next(iter(pending))
                running[pool.submit(_run_cell, runner, pending.pop(name))] = name
            done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                outcomes[name] = fut.result()
                finished.add(name)
                bar.update(1)
                bar.set_postfix_str(f"{name}: {outcomes[name].status}")
    bar.close()
    for name in pending:
        outcomes[name] = CellOutcome(name, "interrupted", error="not started: the study was interrupted")
    return [outcomes[c.name] for c in cells]


def _write_failures(out_dir: Path, outcomes: list[CellOutcome]) -> None:
    failed = [o.__dict__ for o in outcomes if o.status in ("failed", "interrupted")]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "failed.json").write_text(json.dumps(failed, indent=2))
    (out_dir / "summary.json").write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))


def _compare(runner: _Runner, spec: StudySpec, here: Path) -> str:
    nb = _notebook(spec, here, "compare", spec.notebooks.get("compare"))
    params = {"study_file": str(here.resolve()), "uri": runner.uri, "thresholds": spec.compare.model_dump()}
    rc, tail = runner.papermill("10_compare", nb, params, runner.out_dir / "10_compare.ipynb")
    md = Path("reports") / spec.name / "verdicts.md"
    if rc != 0:
        return f"compare notebook failed (see {runner.out_dir / 'logs' / '10_compare.log'}):\n{tail}"
    return md.read_text() if md.is_file() else "(no verdicts.md written)"


def run_study(path: str | Path, workers: int = 2, only: str | None = None, dry_run: bool = False,
              uri: str | None = None, progress: bool = True, compare: bool = True) -> StudySummary:
    """Run every (selected) cell of a study; see the module docstring. Returns the per-cell outcomes."""
    here = Path(path)
    spec = load_spec(here)
    cells = select(expand(here), only)  # everything validated before any MLflow call
    if dry_run:
        return StudySummary(spec.name, [CellOutcome(c.name, "planned") for c in cells])
    runner = _Runner(Path("outputs") / spec.name, resolve_uri(uri))
    todo, outcomes = [], {}
    for c in cells:
        rid = find_cell_run(c.config, runner.uri)
        if rid:
            outcomes[c.name] = CellOutcome(c.name, "skipped", rid)
        else:
            todo.append(c)
    interrupted = _with_sigint(runner, lambda: outcomes.update({o.name: o for o in _schedule(
        runner, _drop_done(todo, outcomes), workers, progress)}))
    ordered = [outcomes[c.name] for c in cells]
    _write_failures(runner.out_dir, ordered)
    verdicts = "" if interrupted or not compare else _compare(runner, spec, here)
    return StudySummary(spec.name, ordered, verdicts, interrupted)


def _drop_done(todo: list[Cell], done: dict[str, CellOutcome]) -> list[Cell]:
    for c in todo:
        c.after = [a for a in c.after if a not in done]
    return todo


def _with_sigint(runner: _Runner, body) -> bool:
    """Run body; on SIGINT stop launching and stop the children. Returns whether it was interrupted."""
    if threading.current_thread() is not threading.main_thread():
        body()
        return runner.stop.is_set()

    def handler(signum, frame):
        if not runner.stop.is_set():
            print("\ninterrupted: stopping the running cells (their runs are marked KILLED)...", file=sys.stderr)
            runner.stop.set()
            threading.Thread(target=runner.terminate_all, daemon=True).start()

    old = signal.signal(signal.SIGINT, handler)
    try:
        body()
    finally:
        signal.signal(signal.SIGINT, old)
    return runner.stop.is_set()


def format_summary(summary: StudySummary) -> str:
    lines = [f"study {summary.study}: " + ", ".join(
        f"{s} {sum(o.status == s for o in summary.outcomes)}" for s in ("done", "skipped", "failed", "interrupted",
                                                                         "planned")
        if any(o.status == s for o in summary.outcomes))]
    for o in summary.failed:
        last = (o.error or "").strip().splitlines()
        lines.append(f"  {o.status.upper()} {o.name}: {last[-1] if last else ''}")
    if summary.verdicts:
        lines += ["", summary.verdicts]
    return "\n".join(lines)


def _is_run_notebook(notebook: Path) -> bool:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return bool(params) and "\nmodel = " in "\n" + params[0].source


def run_one(notebook: str | Path, params_file: str | Path, uri: str | None = None) -> CellOutcome:
    """Run one notebook with one params file. Run notebooks get the full validated config (an invalid file raises
    ConfigError before anything is created); other notebooks (10_compare) get the YAML as it is."""
    from .config import load

    notebook = Path(notebook)
    if not notebook.is_file():
        raise ConfigError(f"notebook not found: {notebook}")
    if _is_run_notebook(notebook):
        cfg = load(params_file)
        cell = Cell(cfg.run_name(), notebook.resolve(), cfg, cfg.model_dump(mode="json"))
        runner = _Runner(Path("outputs") / cfg.study, resolve_uri(uri or cfg.tracking.uri))
        return _run_cell(runner, cell)
    params = load_yaml(params_file)
    runner = _Runner(Path("outputs") / str(params.get("study", "adhoc")), resolve_uri(uri))
    rc, tail = runner.papermill(notebook.stem, notebook.resolve(), params, runner.out_dir / notebook.name)
    return CellOutcome(notebook.stem, "done" if rc == 0 else "failed", None, tail if rc else None)
