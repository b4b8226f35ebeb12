"""Kill the smoke study at successive moments of ONE store, rerun the same command after each kill, and check what
every rerun must repair: one FINISHED run per cell with its notebook, nothing left RUNNING (stale runs KILLED with a
reason, or resumed), a resumed run's metric history with each step once, the verdict table written, and no process
of a killed study left alive (papermill and its kernel die with the CLI, even on SIGKILL of the CLI alone).
Moments come from the store and the logs; kills alternate between SIGKILL of the whole process tree and of the CLI
alone, plus one SIGTERM of the CLI (it must stop its cells, mark their runs KILLED and exit 130). Real processes, real papermill, real MLflow (sqlite in a temporary folder). Several minutes (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from studykit.study.spec import expand
from studyproc import SMOKE, World, check_invariants, has_notebook, kill, wait_for

pytestmark = pytest.mark.slow


def _run(world: World, claim: str, status: str = "RUNNING"):
    return next((r for r in world.runs() if r.data.tags.get("claim") == claim and r.info.status == status), None)


def mid_toy_build(world):
    return next((p.name for p in (world.cache / "toy").glob(".*.tmp-*")), None)


def mid_alignment(world):
    return (run := _run(world, "alignment")) and run.info.run_id


LAST_STEP = next(c.config.train.steps for c in expand(SMOKE) if c.config.rq == "rq1")


def mid_training(world, claim="ground_truth"):
    """The claim's run checkpointed at a step before its last, seen with the cells' processes stopped (they stay
    stopped until the kill), so the kill lands at that step: never after the run's last step, when a SIGTERM finds
    the run finished and nothing to resume. Polled with the processes stopped only once the run exists: between
    two polls a cell runs for a fraction of a step."""
    if _run(world, claim) is None:
        return None
    world.freeze(world.cli)
    seen = None
    try:
        run = _run(world, claim)
        steps = run and [m.step for m in world.client().get_metric_history(run.info.run_id, "train/reward_mean")]
        if steps and max(steps) < LAST_STEP:
            seen = f"run {run.info.run_id[:8]} checkpointed at step {max(steps)} of {LAST_STEP}"
        return seen
    finally:
        if not seen:
            world.thaw()


def finished_without_notebook(world):
    for run in world.runs():
        if run.data.tags.get("rq") == "rq1" and run.info.status == "FINISHED" and not has_notebook(world,
                                                                                                   run.info.run_id):
            return f"{run.data.tags['claim']} run {run.info.run_id[:8]}"
    return None


def mid_compare(world):
    log = world.work / "outputs/smoke/logs/10_compare.log"
    return log.is_file() and "Executing Cell 3" in log.read_text(errors="replace") and "report cell running"


MOMENTS = [("mid toy build", mid_toy_build, "tree"), ("mid alignment", mid_alignment, "cli"),
           ("mid training", mid_training, "tree"), ("FINISHED, notebook not logged", finished_without_notebook, "cli"),
           ("mid training (random)", lambda w: mid_training(w, "random"), "term"), ("mid compare", mid_compare, "tree")]


def test_kills_at_every_moment_then_the_same_command_repairs_the_store(tmp_path):
    world = World(tmp_path / "work", tmp_path / "cache")
    world.work.mkdir()
    seen = []
    for label, moment, how in MOMENTS:
        proc = world.cli = world.study()
        what = wait_for(proc, lambda: moment(world))
        assert what, f"{label}: the study ended before the moment (see {world.work}/cli-{world.started}.log)"
        kill(proc, how, world)
        assert world.no_process_left() == [], f"{label}: processes outlived the study ({how} kill)"
        seen.append((label, how, what))
    final = world.study()
    assert final.wait(timeout=900) == 0, (world.work / f"cli-{world.started}.log").read_text()[-3000:]
    print("\n".join(f"{label:32s} {'SIGTERM cli ' if how == 'term' else 'SIGKILL ' + how:12s}: {what}"
                    for label, how, what in seen))

    cells = check_invariants(world)
    by_claim = {runs[0].data.tags["claim"]: runs for runs in cells.values()}
    killed = [r for runs in cells.values() for r in runs if r.info.status == "KILLED"]
    assert any("stale" in r.data.tags["status_reason"] for r in killed), "the killed alignment run was not reaped"
    gt = next(r for r in by_claim["ground_truth"] if r.info.status == "FINISHED")
    steps = [m.step for m in world.client().get_metric_history(gt.info.run_id, "train/reward_mean")]
    assert sorted(steps) == [1, 2, 3], f"ground_truth history steps {steps}: each step once"
    # Resumed after the kill mid training; then the CLI died after the run FINISHED, before its notebook was logged.
    # Either papermill had not written the executed notebook yet (the rerun resumes the run from its final
    # checkpoint: a second resume) or it had (the rerun logs the notebook from disk): which one is a race.
    resumes = gt.data.tags["resumed_from_step"].split(",")
    assert len(resumes) == 2 or (len(resumes) == 1 and gt.data.tags.get("notebook_relogged") == "true"), gt.data.tags
    assert "status_reason" not in gt.data.tags
    rnd = next(r for r in by_claim["random"] if r.info.status == "FINISHED")  # stopped by SIGTERM: KILLED, resumed
    assert rnd.data.tags.get("previous_status_reason") and "resumed_from_step" in rnd.data.tags
    steps = [m.step for m in world.client().get_metric_history(rnd.info.run_id, "train/reward_mean")]
    assert sorted(steps) == [1, 2, 3], f"random history steps {steps}: each step once"
    parents = [r for r in world.runs() if r.data.tags.get("rq") == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", "the killed study's parent run is reused"

    # Killed after the run finished, before its notebook was logged, papermill done: the notebook on disk is logged.
    random = next(r for r in by_claim["random"] if r.info.status == "FINISHED")
    shutil.rmtree(Path(urlparse(random.info.artifact_uri).path) / "notebook")
    again = world.study("--no-compare")
    assert again.wait(timeout=600) == 0
    tags = world.client().get_run(random.info.run_id).data.tags
    assert tags.get("notebook_relogged") == "true" and has_notebook(world, random.info.run_id)
    check_invariants(world)
