"""The Ray executor: each study cell is one Ray task, inside which the same papermill subprocess as the local
executor's runs (`studykit.study.executors.local.LocalExecutor`, in a scratch folder of the node), against a tracking
server that every node reaches.

* Where: `address` None starts (or joins, with `$RAY_ADDRESS`) a Ray instance on this machine; `auto` joins the
  cluster this machine is part of (`ray start --head` / `--address`); `ray://HOST:PORT` goes through Ray Client.
  When this process already called `ray.init`, that connection is used as it is.
* Store: the tracking URI must be an `http(s)://` MLflow server (`studykit server`); a sqlite file, a `file:` store
  or a direct database URI is refused before anything runs: remote nodes cannot see the first two, and a database
  store without the server leaves artifacts in each node's working folder. An experiment whose artifact location is
  a local path (created earlier on the embedded store) fails its cells when other hosts are in the cluster.
* What a task gets: the cell's resources (`studykit.study.executors.resources.cell_resources`: `train.threads` CPUs, a GPU
  for a non-toy model, the study's `resources:` block over both), the notebook's text, its parameters, and in the
  task's `runtime_env` the environment: `MLFLOW_TRACKING_URI`, one thread per library, every `STUDYKIT_*` and
  `MLFLOW_*` variable of the study process, and the study process's `PYTHONPATH` (`forwarded_pythonpath`: its
  entries made absolute, the node's own PYTHONPATH after them), so that a plug-in module (`reward.name:
  pkg.mod:fn`) the study process imports from a folder imports in the cell's kernel too: on this machine, or on
  other nodes that mount the folder at the same path. A node without that folder needs the plug-in installed
  (`pip install` it on every node, which also registers its entry points). It runs in the study's working folder
  when the node has it (this machine, or a shared file system: relative checkpoint folders then resume across
  nodes), else in its scratch folder. Its executed notebook and log come back to the driver (written to the usual
  `outputs/<study>/` paths), so the study runner logs the notebook to the cell's run through the server as with the
  local executor.
* Failures: `max_retries=0` (a cell is never run twice behind the runner's back). A task whose worker died (killed,
  out of memory, node lost) returns exit code 1 with Ray's reason; its papermill and kernel die with the worker
  (parent-death signals), and its run is then marked FAILED by the runner, which asks the run's own node whether its
  process is gone (`owner_state`): a run owned by a process on another host is never judged from this one.
* Stop: `ray.cancel` (a KeyboardInterrupt in each task, which interrupts its papermill tree: SIGINT, SIGTERM, SIGKILL
  `grace` seconds apart, so the trainer marks its run KILLED), then a forced cancel of what is left; pending tasks are
  cancelled before they start.
* The compare step runs on the driver (`on_driver`, a LocalExecutor): it writes `reports/<study>/` here.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from studykit.study.executors.local import CHILD_ENV, LocalExecutor
from studykit.study.executors.resources import ResourcesSpec, cell_resources

PASS_ENV_PREFIXES = ("STUDYKIT_", "MLFLOW_")
PROBE_TIMEOUT_S = 60.0


def check_uri(uri: str) -> str:
    """The tracking URI, when every Ray node can use it (an MLflow server); ValueError saying what to do otherwise."""
    if uri.startswith(("http://", "https://")):
        return uri
    raise ValueError(f"--executor ray needs a tracking server that every Ray node reaches; got {uri!r}. Start one "
                     "with `studykit server` (add --backend-store-uri for an existing database) and pass its "
                     "http:// URI as --tracking-uri or $MLFLOW_TRACKING_URI")


def local_artifacts(location: str, hosts: set[str], here: str) -> str | None:
    """Why an experiment's artifact location fails on this cluster (a local path while other hosts run cells: an
    experiment first created on the embedded store keeps its `file:` location under a server), else None."""
    if not location.startswith(("file:", "/")) or hosts <= {here}:
        return None
    return (f"its artifacts live at the local path {location}, which the cluster's other hosts "
            f"({', '.join(sorted(hosts - {here}))}) cannot write; log the study to a new experiment "
            "(tracking.experiment in the base file) created through the server, whose artifacts it proxies")


def task_env(uri: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables a cell's Ray task gets (module docstring)."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith(PASS_ENV_PREFIXES)}
    path = forwarded_pythonpath(environ.get("PYTHONPATH"))
    return env | ({"PYTHONPATH": path} if path else {}) | CHILD_ENV | {"MLFLOW_TRACKING_URI": uri}


def forwarded_pythonpath(value: str | None, cwd: Path | None = None) -> str | None:
    """The study process's PYTHONPATH as a task sees it: each entry absolute (a relative one against `cwd`, the
    study's working folder: a task may run elsewhere), then `${PYTHONPATH}`, which Ray expands on the worker to the
    node's own value (ray._private.utils.update_envs), so both are on the path, the study's first. None when unset.
    An empty entry (the working folder, for Python) is dropped; a `$` in an entry would be expanded by Ray too."""
    entries = [p for p in (value or "").split(os.pathsep) if p]
    if not entries:
        return None
    cwd = Path.cwd() if cwd is None else cwd
    return os.pathsep.join([str((cwd / p).resolve()) for p in entries] + ["${PYTHONPATH}"])


def run_cell(key: str, notebook_name: str, notebook_text: str, params: dict[str, Any], cwd: str,
             grace: float) -> dict[str, Any]:
    """The body of a cell's Ray task (runs on a worker node): papermill through LocalExecutor in a scratch folder."""
    scratch = Path(tempfile.mkdtemp(prefix=f"studykit-{key}-"))
    try:
        notebook = scratch / notebook_name
        notebook.write_text(notebook_text)
        os.chdir(cwd if Path(cwd).is_dir() else scratch)
        local = LocalExecutor(scratch, os.environ["MLFLOW_TRACKING_URI"])
        out_nb = scratch / "executed" / notebook_name
        try:
            rc, tail = local.run(key, notebook, params, out_nb)
        except KeyboardInterrupt:  # ray.cancel: stop papermill and its kernel the way the local executor does
            local.stop(grace)
            rc, tail = 130, "interrupted: the Ray task was cancelled"
        log = scratch / "logs" / f"{key}.log"
        return {"rc": rc, "tail": tail, "host": socket.gethostname(), "pid": os.getpid(),
                "notebook": out_nb.read_text() if out_nb.is_file() else None,
                "log": log.read_text(errors="replace") if log.is_file() else ""}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def probe_owner(tags: dict[str, str]) -> str:
    """`tracking.owner_state` on the node the probe runs on (the run's owner's host)."""
    from studykit.tracking.experiment import owner_state

    return owner_state(tags)


class RayExecutor:
    """Submits one Ray task per cell and remembers them, so `stop` can cancel them all."""

    def __init__(self, out_dir: Path, uri: str, address: str | None = None,
                 resources: ResourcesSpec | None = None, grace: float = 10.0):
        self.out_dir, self.uri = out_dir, check_uri(uri)
        try:
            import ray
        except ImportError as err:
            raise ValueError(f"--executor ray needs Ray ({err}); install it with pip install 'ray[client]' (the "
                             "`ray` extra of studykit)") from None
        self.resources, self.grace = resources, grace
        self.on_driver = LocalExecutor(out_dir, uri)
        self.refs: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.stopping = False
        if not ray.is_initialized():
            if address is None and not os.environ.get("RAY_ADDRESS"):  # a Ray instance of its own, for this study
                ray.init(include_dashboard=False, log_to_driver=False)
            else:  # an existing cluster (or Ray Client): its own settings hold
                ray.init(address=address, log_to_driver=False)
        self.ray = ray
        self._task = ray.remote(max_retries=0, retry_exceptions=False)(run_cell)
        self._probe = ray.remote(num_cpus=0, max_retries=0)(probe_owner)

    def check_feasible(self, params: dict[str, Any], key: str) -> None:
        """ValueError when no node of the cluster could ever run the cell (it would wait forever)."""
        wants = cell_resources(params, self.resources)
        total = self.ray.cluster_resources()
        need = {"CPU": wants["num_cpus"], "GPU": wants["num_gpus"], **wants.get("resources", {})}
        short = {k: v for k, v in need.items() if v and total.get(k, 0.0) < v}
        if short:
            raise ValueError(f"cell {key} needs {short} but the Ray cluster has "
                             f"{ {k: total.get(k, 0.0) for k in short} }; set the study file's `resources:` "
                             "block (e.g. num_gpus: 0 for a CPU cluster) or add nodes")

    def check_artifacts(self, params: dict[str, Any], key: str) -> None:
        """ValueError when the cell's experiment keeps artifacts where other nodes cannot write (`local_artifacts`)."""
        from mlflow.tracking import MlflowClient

        name = (params.get("tracking") or {}).get("experiment") or params.get("study")
        exp = MlflowClient(self.uri).get_experiment_by_name(name) if name else None
        hosts = {n["NodeManagerHostname"] for n in self.ray.nodes() if n.get("Alive")}
        why = exp and local_artifacts(exp.artifact_location, hosts, socket.gethostname())
        if why:
            raise ValueError(f"cell {key}: experiment {name!r}: {why}")

    def run(self, key: str, notebook: Path, params: dict[str, Any], out_nb: Path) -> tuple[int, str]:
        log = self.out_dir / "logs" / f"{key}.log"
        for p in (log, out_nb):
            p.parent.mkdir(parents=True, exist_ok=True)
        out_nb.unlink(missing_ok=True)  # a stale notebook of an earlier attempt must not be logged to this run
        try:
            self.check_feasible(params, key)
            self.check_artifacts(params, key)
        except ValueError as err:
            log.write_text(str(err) + "\n")
            return 2, str(err)
        ref = self._submit(key, notebook, params)
        if ref is None:
            return 130, "not started: the study was interrupted"
        result = self._result(key, ref)
        log.write_text(result.get("log") or "")
        if result.get("notebook") is not None:
            out_nb.write_text(result["notebook"])
        return result["rc"], result["tail"]

    def _submit(self, key: str, notebook: Path, params: dict[str, Any]):
        opts = cell_resources(params, self.resources)
        task = self._task.options(**opts, name=f"studykit:{key}",
                                  runtime_env={"env_vars": task_env(self.uri)})
        with self.lock:
            if self.stopping:
                return None
            ref = task.remote(key, notebook.name, notebook.read_text(), params, str(Path.cwd().resolve()),
                              self.grace)
            self.refs[key] = ref
        return ref

    def _result(self, key: str, ref) -> dict[str, Any]:
        from ray.exceptions import RayError, TaskCancelledError

        try:
            return self.ray.get(ref)
        except TaskCancelledError:
            return {"rc": 130, "tail": "interrupted: the Ray task was cancelled"}
        except RayError as err:  # the worker died, the node was lost, or the task could not start
            first = str(err).strip().splitlines()
            return {"rc": 1, "tail": f"the Ray task of cell {key} failed: {type(err).__name__}: "
                                     f"{first[0] if first else ''}"}
        finally:
            with self.lock:
                self.refs.pop(key, None)

    def stop(self, grace: float | None = None) -> None:
        """Cancel every task: interrupt (the task stops its papermill tree), then force what is still running."""
        grace = self.grace if grace is None else grace
        threading.Thread(target=self.on_driver.stop, args=(grace,), daemon=True).start()  # a running compare step
        with self.lock:
            self.stopping = True
            refs = list(self.refs.values())
        for ref in refs:
            self.ray.cancel(ref, force=False)
        deadline = time.monotonic() + 3 * grace + 5  # the task's own SIGINT, SIGTERM, SIGKILL steps
        while time.monotonic() < deadline:
            with self.lock:
                if not any(r in self.refs.values() for r in refs):
                    return
            time.sleep(0.2)
        with self.lock:
            left = [r for r in refs if r in self.refs.values()]
        for ref in left:
            self.ray.cancel(ref, force=True)

    def owner_state(self, tags: dict[str, str]) -> str:
        """"alive" / "gone" for a run owned by a process on a node of this cluster, asked on that node; "gone" when
        its host is known to the cluster only as dead nodes; "unknown" when the host is not in the cluster."""
        host = tags.get("owner_host")
        nodes = [n for n in self.ray.nodes() if n.get("NodeManagerHostname") == host]
        alive = [n for n in nodes if n.get("Alive")]
        if not alive:
            return "gone" if nodes else "unknown"
        from ray.exceptions import GetTimeoutError, RayError
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(alive[0]["NodeID"], soft=False)
        try:
            return self.ray.get(self._probe.options(scheduling_strategy=strategy).remote(tags),
                                timeout=PROBE_TIMEOUT_S)
        except (GetTimeoutError, RayError):
            return "unknown"
