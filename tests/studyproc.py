"""Helpers of the crash and race tests: the smoke study as real `studykit study` processes (real papermill, real
MLflow on a sqlite store in a temporary folder), moments read from the store and the logs, kills, and the
invariants every study run must leave behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"


@dataclass
class World:
    """One working folder, one store, one toy cache; every process started here carries `mark` in its env."""

    work: Path
    cache: Path
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: int = 0
    cli: subprocess.Popen | None = None  # the study CLI a moment watches (set by the test)
    frozen: list = field(default_factory=list)  # processes `freeze` stopped

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.work / 'mlruns' / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        return dict(os.environ, MLFLOW_TRACKING_URI=self.uri, STUDYKIT_CACHE=str(self.cache), OMP_NUM_THREADS="1",
                    STUDYKIT_TEST_MARK=self.mark)

    def study(self, *args: str, study: Path = SMOKE) -> subprocess.Popen:
        self.started += 1
        log = open(self.work / f"cli-{self.started}.log", "w")
        cmd = [sys.executable, "-m", "studykit.cli.commands", "study", str(study), "--workers", "2", *args]
        return subprocess.Popen(cmd, cwd=self.work, env=self.env(), stdout=log, stderr=subprocess.STDOUT)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str = "smoke") -> list:
        if not (self.work / "mlruns" / "mlflow.db").is_file():
            return []
        from studykit.tracking import experiment as tracking

        client = tracking.client(self.uri)
        exp = client.get_experiment_by_name(experiment)
        return client.search_runs([exp.experiment_id], "", max_results=500) if exp else []

    def processes(self) -> list[psutil.Process]:
        """Every live process started by this test's studies (papermill, kernels, verifier workers included)."""
        mine = []
        for proc in psutil.process_iter():
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("STUDYKIT_TEST_MARK") == self.mark:
                    mine.append(proc)
            except psutil.Error:
                continue
        return mine

    def freeze(self, cli: subprocess.Popen) -> list[psutil.Process]:
        """SIGSTOP every process of this world but the study CLI `cli`: nothing they do happens until `thaw`."""
        frozen = []
        for p in self.processes():
            if p.pid != cli.pid:
                try:
                    p.suspend()
                    frozen.append(p)
                except psutil.Error:
                    pass
        self.frozen = frozen
        return frozen

    def thaw(self) -> None:
        for p in self.frozen:
            try:
                p.resume()
            except psutil.Error:
                pass
        self.frozen = []

    def no_process_left(self, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return [" ".join(p.cmdline()[:4]) for p in left if p.is_running()]


def _sigint_pending(proc: psutil.Process) -> bool:
    """Whether SIGINT waits to be delivered to `proc` (a stopped process keeps its signals pending)."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m & (1 << (signal.SIGINT - 1)) for m in masks)


def kill(proc: subprocess.Popen, how: str, world: World | None = None) -> None:
    """SIGKILL the CLI alone ("cli"), or it and all its descendants at once ("tree"); or SIGTERM the CLI ("term"),
    which must stop its cells and exit 130. Processes the moment froze (`world.freeze`) stay stopped until the
    CLI's interrupt is pending in them (SIGTERM), so a cell is stopped exactly at the state the moment saw."""
    frozen = list(world.frozen) if world else []
    if how == "term":
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while frozen and not any(_sigint_pending(p) for p in frozen) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the CLI signals the whole tree in one loop: let it reach every process
        world and world.thaw()
        assert proc.wait(timeout=180) == 130
        return
    victims = [psutil.Process(proc.pid)]
    if how == "tree":
        victims += victims[0].children(recursive=True)
    for v in victims:
        try:
            v.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    world and world.thaw()  # SIGKILL ends stopped processes too; the ones the CLI-only kill spared run on
    proc.wait(timeout=30)


def wait_for(proc: subprocess.Popen, moment, timeout: float = 600.0, poll: float = 0.1):
    """Poll `moment()` until it returns something true; returns it (None if the study ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen = moment()
        except Exception:  # a store being written by others: try again
            seen = None
        if seen:
            return seen
        if proc.poll() is not None:
            return None
        time.sleep(poll)
    raise AssertionError(f"moment not reached in {timeout} s")


def has_notebook(world: World, run_id: str) -> bool:
    return any(a.path.endswith(".ipynb") for a in world.client().list_artifacts(run_id, "notebook"))


def check_invariants(world: World, study: Path = SMOKE) -> dict[str, list]:
    """One FINISHED run per cell with its notebook, nothing RUNNING, every KILLED run with a reason, verdicts written.
    Returns the runs by cell name."""
    from studykit.study.spec import expand, load_spec

    name = load_spec(study).name
    runs = world.runs(name)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"], "a run was left RUNNING"
    by_cell = {}
    for cell in expand(study):
        mine = [r for r in runs if r.data.tags.get("config_hash") == cell.config.config_hash()]
        finished = [r for r in mine if r.info.status == "FINISHED"]
        assert len(finished) == 1, (cell.name, [(r.info.run_id, r.info.status) for r in mine])
        assert has_notebook(world, finished[0].info.run_id), f"{cell.name}: FINISHED without its notebook"
        assert (world.work / "outputs" / name / f"{cell.name}.ipynb").is_file()
        by_cell[cell.name] = mine
    for r in runs:
        if r.info.status == "KILLED":
            assert r.data.tags.get("status_reason"), f"KILLED run {r.info.run_id} without a status_reason"
        if r.info.status == "FINISHED":
            assert r.data.tags.get("owner_pid") and r.data.tags.get("owner_host"), r.data.tags
    assert (world.work / "reports" / name / "verdicts.json").is_file()
    assert_trained([r for runs_ in by_cell.values() for r in runs_ if r.info.status == "FINISHED"])
    parents = [r for r in runs if r.data.tags.get("rq") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", "one parent run per study, FINISHED"
    cell_runs = [r for r in runs if r.data.tags.get("config_hash")]
    assert all(r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for r in cell_runs), "orphan cell run"
    return by_cell


def assert_trained(runs: list) -> None:
    """Every FINISHED training run updated its policy: some group of the run had reward variance (the trainer's
    `train/no_variance_run` is 0). A smoke model that never answers right leaves ground truth untrained."""
    for r in runs:
        if r.data.tags.get("rq") in ("rq1", "rq2", "rq3", "ablation"):
            assert r.data.metrics.get("train/no_variance_run") == 0.0, (
                f"{r.data.tags.get('claim')} run {r.info.run_id}: no group had reward variance, no update ran")


def finished_cell_runs(uri: str, experiment: str = "smoke") -> list:
    """The FINISHED runs of the study's cells in the store at `uri`."""
    from studykit.tracking import experiment as tracking

    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=500)
    return [r for r in runs if r.data.tags.get("config_hash")]
