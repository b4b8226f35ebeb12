"""Several `studykit study` processes on one store at once: on a fresh store (the first store access races: two of
the same study and one of another, each `--only alignment`), then on the existing store (two copies of the whole
smoke study). None crashes, no cell runs twice (exactly one run per cell config hash), nothing is lost (every cell
FINISHED with its notebook, the verdict table written). Real processes and MLflow; a few minutes (slow)."""

from __future__ import annotations

import json

import pytest
import yaml

from studyproc import SMOKE, World, check_invariants, has_notebook

pytestmark = pytest.mark.slow


def _other_study(world: World):
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(name="smoke-other", base=str((SMOKE.parent / spec["base"]).resolve()))
    path = world.work / "other.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _finish(world: World, procs) -> list[str]:
    codes = [p.wait(timeout=1200) for p in procs]
    logs = [(world.work / f"cli-{i}.log").read_text() for i in range(world.started - len(procs) + 1,
                                                                       world.started + 1)]
    assert codes == [0] * len(procs), [log[-2000:] for log in logs]
    return logs


def _one_run_per_cell(world: World, experiment: str) -> None:
    hashes = [r.data.tags["config_hash"] for r in world.runs(experiment) if r.data.tags.get("config_hash")]
    assert len(hashes) == len(set(hashes)), f"{experiment}: a cell ran twice: {hashes}"


def test_studies_race_on_a_fresh_store_then_on_an_existing_one(tmp_path):
    world = World(tmp_path / "work", tmp_path / "cache")
    world.work.mkdir()
    other = _other_study(world)
    only = ("--only", "alignment", "--no-compare")
    logs = _finish(world, [world.study(*only), world.study(*only), world.study(*only, study=other)])
    assert not any("OperationalError" in log for log in logs)
    _one_run_per_cell(world, "smoke")
    _one_run_per_cell(world, "smoke-other")
    for experiment in ("smoke", "smoke-other"):
        (run,) = [r for r in world.runs(experiment) if r.data.tags.get("config_hash")]  # besides the study run
        assert run.info.status == "FINISHED" and has_notebook(world, run.info.run_id)
    assert sum("skipped 1" in log for log in logs[:2]) == 1, "the second copy waited, then skipped the cell"

    logs = _finish(world, [world.study(), world.study()])
    _one_run_per_cell(world, "smoke")
    check_invariants(world)
    lines = [_summary_line(log) for log in logs]
    print("\nexisting store, two copies of the smoke study:", *lines, sep="\n  ")
    assert sum(_count(line, "done") for line in lines) == 2, lines  # ground_truth and random, once each
    assert all(_count(line, "done") + _count(line, "skipped") == 3 for line in lines), lines
    json.loads((world.work / "reports/smoke/verdicts.json").read_text())  # whole, not interleaved
    (parent,) = [r for r in world.runs() if r.data.tags.get("rq") == "study"]  # one parent run for both processes
    assert len(world.client().get_metric_history(parent.info.run_id, "report/missing")) == 2  # one compare each


def _summary_line(log: str) -> str:
    return next(line for line in log.splitlines() if line.startswith("study smoke:"))


def _count(line: str, status: str) -> int:
    words = line.replace(",", "").split()
    return int(words[words.index(status) + 1]) if status in words else 0
