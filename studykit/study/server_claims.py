"""Cell claims on a tracking server: study processes on different machines (or in different folders of one) that
share an MLflow server claim a cell where all of them can see it, so each cell runs once.

A claim is an experiment named `studykit-claims/<experiment>/<key>` (`claim_name`). The server's unique constraint
on experiment names makes its creation atomic: of any number of drivers creating the same name at once exactly one
succeeds, whatever their clocks say (run start times are client clocks, so "the oldest claim run wins" would let
two drivers on skewed machines both win). The holder's experiment carries its owner (`owner_host`, `owner_pid`,
`owner_start`), a random `token` and a `beat` counter that a thread bumps every `heartbeat_s()`.

Release: the holder renames its experiment to a unique `studykit-claims/released/<uuid>` (freeing the name) and
deletes it (hidden from the UI). A waiter takes over a dead holder's claim the same way, by experiment id, so two
waiters that judge one claim dead both rename that same experiment, and then race on creating the name afresh: one
wins. A holder is dead when its owner process is gone (judged on its own host only) or when its `beat` has not
changed for `expire_s()` seconds of the waiter's own clock (no cross-machine clock comparison). A holder that
outlives a takeover (it stalled
for longer than the expiry) is warned; the taker then finds its run RUNNING with a live or unknown owner and
reports the cell busy without touching the run (`claims.settle`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Iterator

from mlflow.exceptions import MlflowException

from studykit.tracking import experiment as tracking

PREFIX = "studykit-claims"
POLL_S = 1.0


def heartbeat_s() -> float:
    return float(os.environ.get("STUDYKIT_CLAIM_HEARTBEAT_S", "10"))


def expire_s() -> float:
    """Seconds without a heartbeat after which another host's claim is taken over (`STUDYKIT_CLAIM_EXPIRE_S`)."""
    return float(os.environ.get("STUDYKIT_CLAIM_EXPIRE_S", "120"))


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def claim_name(experiment: str, key: str) -> str:
    return f"{PREFIX}/{experiment}/{key}"


def _create(mlc: Any, name: str, token: str) -> str | None:
    """The new claim experiment's id, or None when the name is taken (by another driver)."""
    tags = tracking.owner_tags() | {"token": token, "beat": "0"}
    try:
        return mlc.create_experiment(name, tags=tags)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    held = mlc.get_experiment_by_name(name)  # a retried create whose first try went through is still ours
    return held.experiment_id if held is not None and held.tags.get("token") == token else None


def release(mlc: Any, experiment_id: str, why: str) -> None:
    """Free the claim's name and hide it; harmless when another driver did it first."""
    try:
        mlc.set_experiment_tag(experiment_id, "released", why)
        mlc.rename_experiment(experiment_id, f"{PREFIX}/released/{uuid.uuid4().hex}")
    except MlflowException as err:
        if err.error_code not in ("INVALID_STATE", "RESOURCE_DOES_NOT_EXIST"):
            raise
        return
    try:
        mlc.delete_experiment(experiment_id)
    except MlflowException as err:  # with logins, deleting another user's claim needs MANAGE; renamed, it is free
        if err.error_code not in ("INVALID_STATE", "RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"):
            raise


class _Watch:
    """Whether a claim held by someone else is dead (module docstring), judged by this process's own clock."""

    def __init__(self):
        self.seen: tuple[str, str] | None = None
        self.since = 0.0

    def dead(self, exp: Any) -> str:
        """Why the holder of `exp` is dead, or ""."""
        tags = exp.tags
        if tracking.owner_state(tags) == "gone":
            return f"its owner {tags.get('owner_host')}:{tags.get('owner_pid')} is gone"
        beat = (exp.experiment_id, tags.get("beat", ""))
        if beat != self.seen:
            self.seen, self.since = beat, time.monotonic()
            return ""
        idle = time.monotonic() - self.since
        return f"no heartbeat for {idle:.0f} s" if idle >= expire_s() else ""


class _Heartbeat(threading.Thread):
    def __init__(self, mlc: Any, experiment_id: str, name: str, label: str):
        super().__init__(daemon=True, name=f"claim-heartbeat {label}")
        self.mlc, self.experiment_id, self.name_, self.label = mlc, experiment_id, name, label
        self.done = threading.Event()

    def run(self) -> None:
        beat, warned = 0, False
        while not self.done.wait(heartbeat_s()):
            beat += 1
            try:
                self.mlc.set_experiment_tag(self.experiment_id, "beat", str(beat))
                lost = self.mlc.get_experiment(self.experiment_id).name != self.name_
            except Exception:  # an outage: the next beat tries again
                continue
            if lost and not warned:
                warned = True
                print(f"warning: the claim of {self.label} was taken over by another study process (this one "
                      f"sent no heartbeat for {expire_s():.0f} s); its run is left to this process", file=sys.stderr)


@contextmanager
def claim(uri: str, experiment: str, key: str, cancelled: Callable[[], bool] = lambda: False,
          on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the server-side claim of `key` in `experiment` (module docstring); yields False when cancelled."""
    mlc = tracking.client(uri)
    name, token, watch = claim_name(experiment, key), uuid.uuid4().hex, _Watch()
    announced = False
    while True:
        if cancelled():
            yield False
            return
        exp_id = _create(mlc, name, token)
        holder = None if exp_id else mlc.get_experiment_by_name(name)
        if exp_id:
            break
        if holder is not None:
            why = watch.dead(holder)
            if why:
                print(f"{key}: taking over the claim of {_who(holder.tags)} ({why})", file=sys.stderr)
                release(mlc, holder.experiment_id, f"taken over: {why}")
                continue
            if not announced and on_wait is not None:
                on_wait(_who(holder.tags))
                announced = True
        time.sleep(POLL_S)
    beat = _Heartbeat(mlc, exp_id, name, key)
    beat.start()
    try:
        yield True
    finally:
        beat.done.set()
        beat.join()
        try:
            release(mlc, exp_id, "released")
        except Exception as err:  # noqa: BLE001 - the cell's outcome stands; an unreleased claim expires
            print(f"warning: the claim of {key} was not released ({type(err).__name__}: {err}); other study "
                  f"processes take it over after {expire_s():.0f} s without a heartbeat", file=sys.stderr)


def _who(tags: dict[str, str]) -> str:
    return f"{tags.get('owner_host', '?')} pid {tags.get('owner_pid', '?')}"
