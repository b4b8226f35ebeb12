"""Claiming a cell and settling its runs: any number of study processes on one store run each cell once, and
whatever was killed, at any moment, the next study run finds a state it can repair.

Finished: a cell is finished when a FINISHED run of its config hash has its executed notebook (`notebook/*.ipynb`)
in the store (`finished_run`). Nothing else counts; finished cells are skipped without a claim.

Claim: every other cell runs under an exclusive lock per experiment and config hash (`claim`), held for its whole
execution: beside a local sqlite store in `<store dir>/claims/<experiment>/<hash>.lock`; on a tracking server
(http/https URI) on the server itself (`studykit.study.server_claims`: an experiment per claim, so study processes
on different machines or folders see each other's claims; a dead holder's claim expires), else under
`outputs/.claims/` of the working directory. A second process waits for the claim and then re-reads the store, so
it skips a cell the first one finished. A dead holder's lock is released by the kernel.

Settling, under the claim (`settle`), before the cell runs:
* a RUNNING run whose owner (tags `owner_host`, `owner_pid`, `owner_start`) is gone, or has no owner tags (older
  code), is marked KILLED with a `status_reason` naming the owner. An owner still alive on this host is waited for
  (`WAIT_OWNER_S`: a kernel whose study was killed dies within moments); if it lives on, or the run belongs to
  another host that cannot be asked, the cell is `busy` (reported as failed, nothing touched). Another host's run is
  judged only by that host: the executor's probe (the Ray executor runs `tracking.owner_state` on the owner's node).
* a run another engine trains (tag `engine`: `studykit export verl`) is never reaped; while it is SCHEDULED, RUNNING
  or FINISHED without its import (tag `verl_imported`) the cell is `busy`; imported and FINISHED, it is `done`
  without a notebook.
* a FINISHED run without its notebook (a kill after the run finished, before the notebook was logged): the executed
  notebook on disk is logged when papermill completed it and it names the run (tag `notebook_relogged`); otherwise
  the run is marked KILLED ("finished, but its notebook was lost") and the cell runs again: a training run then
  resumes from its final checkpoint (nothing is trained twice) and finishes with its notebook, an alignment run is
  measured anew. Either way exactly one FINISHED run per cell remains.
After the cell (`conclude`): the cell's run is the one tagged with this execution's `claim_token` (the runner puts a
fresh token in the cell's `tracking.claim`; the notebook's run carries it), so a driver ends and logs into only a run
its own cell wrote. A run still RUNNING once its notebook process is gone is marked KILLED (the study was
interrupted) or FAILED (the process died), and the executed notebook is logged to the cell's run.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from studykit.infra import procs
from studykit.tracking import experiment as tracking
from studykit.config.schema import RunConfig
from studykit.infra.locks import polling_lock
from studykit.study import server_claims

WAIT_OWNER_S = 15.0


def _lock_root(uri: str) -> Path:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).parent / "claims"
    return Path("outputs") / ".claims"


def claim_file(uri: str, experiment: str, key: str) -> Path:
    return _lock_root(uri) / re.sub(r"[^A-Za-z0-9_.-]", "_", experiment) / f"{key}.lock"


def experiment_of(cfg: RunConfig) -> str:
    return cfg.tracking.experiment or cfg.study


@contextmanager
def claim(uri: str, experiment: str, key: str, cancelled: Callable[[], bool] = lambda: False,
          on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the claim of `key` (a config hash, or `compare`) in `experiment`; False: cancelled while waiting."""
    if server_claims.is_server(uri):
        with server_claims.claim(uri, experiment, key, cancelled, on_wait) as held:
            yield held
        return
    note = f"{procs.hostname()} pid {os.getpid()}"
    with polling_lock(claim_file(uri, experiment, key), cancelled, note=note, on_wait=on_wait) as held:
        yield held


def has_notebook(client: Any, run_id: str) -> bool:
    return any(a.path.endswith(".ipynb") for a in client.list_artifacts(run_id, "notebook"))


def external(run: Any) -> bool:
    """A run another engine trains (tag `engine`, e.g. `studykit export verl`): it has no notebook, and its
    process is not this study's to reap; it counts as finished once imported (tag `verl_imported`)."""
    return "engine" in run.data.tags


def complete(client: Any, run: Any) -> bool:
    """A FINISHED run that counts: its notebook is in the store, or it is an imported external run."""
    return "verl_imported" in run.data.tags if external(run) else has_notebook(client, run.info.run_id)


def finished_run(cfg: RunConfig, uri: str) -> str | None:
    """The newest FINISHED run of the cell that has its notebook in the store, else None."""
    client = tracking.client(uri)
    return next((r.info.run_id for r in tracking.find_runs(cfg, ("FINISHED",), uri=uri)
                 if complete(client, r)), None)


def mark(client: Any, run_id: str, status: str, reason: str) -> None:
    client.set_tag(run_id, "status_reason", reason)
    client.set_terminated(run_id, status=status)


def _owner(tags: dict[str, str]) -> str:
    return f"{tags.get('owner_host', '?')}:{tags.get('owner_pid', '?')}" if "owner_pid" in tags else "no owner tags"


Probe = Callable[[dict[str, str]], str]


def owner_state(tags: dict[str, str], probe: Probe | None = None) -> str:
    """`tracking.owner_state`; a run owned by another host is judged by `probe` (which asks that host), if given."""
    state = tracking.owner_state(tags)
    if state == "unknown" and probe is not None and tags.get("owner_pid", "").isdigit() and "owner_host" in tags:
        state = probe(tags)
    return state


def _wait_gone(tags: dict[str, str], wait_s: float, probe: Probe | None = None) -> str:
    deadline = time.monotonic() + wait_s
    state = owner_state(tags, probe)
    while state == "alive" and time.monotonic() < deadline:
        time.sleep(0.2 if probe is None else 1.0)
        state = owner_state(tags, probe)
    return state


def reap(client: Any, running: list[Any], reason: str, status: str = "KILLED", wait_s: float = WAIT_OWNER_S,
         probe: Probe | None = None):
    """Mark each RUNNING run whose owner is gone; returns the first one still owned by a live process (or by one on
    a host that cannot be asked), or None."""
    for run in running:
        tags = run.data.tags
        state = _wait_gone(tags, wait_s, probe)
        if state == "alive" or (state == "unknown" and "owner_host" in tags) or external(run):
            return run
        mark(client, run.info.run_id, status, f"{reason} (owner {_owner(tags)} gone; marked by "
                                              f"{procs.hostname()}:{os.getpid()})")
    return None


@dataclass
class Settled:
    state: str  # "done" | "todo" | "busy"
    run_id: str | None = None
    note: str = ""


def complete_notebook(path: Path, run_id: str) -> bool:
    """Whether papermill finished writing the notebook at `path` without an error, and it names run `run_id`."""
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return False
    meta = nb.metadata.get("papermill", {})
    return bool(meta.get("end_time")) and not meta.get("exception") and run_id in nbformat.writes(nb)


def log_notebook(client: Any, run_id: str, path: Path) -> None:
    client.log_artifact(run_id, str(path), artifact_path="notebook")


def settle(cfg: RunConfig, uri: str, out_nb: Path, wait_s: float = WAIT_OWNER_S,
           probe: Probe | None = None, require_version: str | None = None) -> Settled:
    """Repair what a kill left for this cell (module docstring); call it holding the cell's claim.
    `require_version` (`studykit study --rerun-stale`): a FINISHED run with another `code_version` tag is left as
    it is and does not finish the cell."""
    client = tracking.client(uri)
    runs = tracking.find_runs(cfg, None, uri=uri)
    busy = reap(client, [r for r in runs if r.info.status == "RUNNING"], "stale: left RUNNING by a killed process",
                wait_s=wait_s, probe=probe)
    if busy is not None:
        return Settled("busy", busy.info.run_id, f"run {busy.info.run_id} of this cell is RUNNING in live process "
                                                 f"{_owner(busy.data.tags)}, outside this study run")
    waiting = next((r for r in runs if external(r) and r.info.status in ("SCHEDULED", "RUNNING", "FINISHED")
                    and not complete(client, r)), None)
    if waiting is not None:
        return Settled("busy", waiting.info.run_id, f"run {waiting.info.run_id} of this cell is trained by "
                                                    f"{waiting.data.tags['engine']} ({waiting.info.status}, not imported "
                                                    "yet: `studykit import verl` ends it)")
    finished = [r for r in runs if r.info.status == "FINISHED"
                and (require_version is None or r.data.tags.get("code_version") == require_version)]
    done = next((r for r in finished if complete(client, r)), None)
    if done is not None:
        return Settled("done", done.info.run_id)
    if finished:
        run_id = finished[0].info.run_id
        if complete_notebook(out_nb, run_id):
            log_notebook(client, run_id, out_nb)
            client.set_tag(run_id, "notebook_relogged", "true")
            return Settled("done", run_id, "notebook logged from disk")
        for r in finished:
            mark(client, r.info.run_id, "KILLED", "finished, but its notebook was lost (killed before it was "
                                                  "logged); the cell runs again")
    return Settled("todo")


def with_token(params: dict, token: str) -> dict:
    """The cell's papermill parameters with this execution's claim token (`tracking.claim`, tag `claim_token`)."""
    return dict(params, tracking=dict(params["tracking"], claim=token)) if "tracking" in params else params


def conclude(cfg: RunConfig, uri: str, out_nb: Path, rc: int, since: float, stopped: bool,
             probe: Probe | None = None, token: str | None = None) -> tuple[str | None, str]:
    """After the cell's notebook process ended: (its run id or None, the run's final status or ""). With `token`,
    only the run carrying it is the cell's (another driver's run of the same config is never touched)."""
    client = tracking.client(uri)
    runs = tracking.find_runs(cfg, None, uri=uri)
    mine = [r for r in runs if r.data.tags.get("claim_token") == token] if token else \
        [r for r in runs if r.info.status == "RUNNING" or (r.info.end_time or 0) >= since * 1000]
    if not mine:
        return None, ""
    run = mine[0]
    if run.info.status == "RUNNING":
        reason = "interrupted: the study was stopped" if stopped else f"its notebook process ended (exit code {rc})"
        reap(client, [run], reason, status="KILLED" if stopped else "FAILED", probe=probe)
    if out_nb.is_file():
        log_notebook(client, run.info.run_id, out_nb)
    return run.info.run_id, client.get_run(run.info.run_id).info.status


def reap_reports(experiment: str, uri: str) -> None:
    """Mark the study's report runs (rq=report) left RUNNING by a killed compare step; hold the compare claim."""
    client = tracking.client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    running = client.search_runs([exp.experiment_id], "tags.rq = 'report' and attributes.status = 'RUNNING'")
    busy = reap(client, running, "stale: left RUNNING by a killed compare step")
    if busy is not None:
        raise RuntimeError(f"report run {busy.info.run_id} is RUNNING in live process {_owner(busy.data.tags)}")
