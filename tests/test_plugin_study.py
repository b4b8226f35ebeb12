"""Plug-ins in a whole study (issue 22): a loose-module reward and estimator (a module in a folder on PYTHONPATH) and
an entry-point pair (a fake installed distribution: a `*.dist-info` folder with entry_points.txt on the path) each
train end to end in a smoke-sized `studykit study`, through the local executor and through `--executor ray` (a real
Ray instance and `studykit server`, as tests/ray_smoke.py starts them); a plug-in that raises fails its own cell and
no other. The verdict table has each plug-in condition's row and its claim card; the runs carry `plugin.<kind>`.

How the modules reach the cells: the local executor's papermill kernels inherit the study process's environment,
so PYTHONPATH is enough; the Ray executor forwards the study process's PYTHONPATH to each task
(`executors.ray.forwarded_pythonpath`). The Ray test starts Ray BEFORE it sets PYTHONPATH, so its workers do not
inherit it: only the forwarding can make the modules importable there (with the forwarding switched off, both
plug-in cells fail with `cannot import module`). One study per executor, no alignment cell: 4 cells locally (the
raising one included), 3 on Ray; 67 s and 167 s on a 2-core machine busy with another study (the Ray one includes
starting `studykit server` and Ray)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from studykit.cli import commands as cli
from studykit.study.executors.ray import forwarded_pythonpath, task_env

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "params/studies/smoke.yaml"
LOOSE = "plugstudy_claims"  # module names no other test uses (sys.modules is shared by the session)
ENTRY = "plugstudy_ep"
DIST_VERSION = "0.4.1"

REWARDS = """
    from studykit.scoring.plugins import extract_answer


    def short(completions, problem, verify, rng, max_chars: int = 200):
        return [float(len(t) <= max_chars and verify(problem, extract_answer(t))) for t in completions]


    def centred(rewards, scale: float = 1.0):
        return scale * (rewards > rewards.mean()) - scale * (rewards < rewards.mean())


    def boom(completions, problem, verify, rng):
        raise LookupError("plugstudy boom")
"""

CARDS = {
    "short_loose": {"text": "Paying only short right answers works as well as ground truth (loose module).",
                    "source": "plugstudy test, loose", "predicts": "holds-everywhere"},
    "short_entry": {"text": "Paying only short right answers works as well as ground truth (entry point).",
                    "source": "plugstudy test, entry point", "predicts": "holds-everywhere"},
}


def _plugins(root: Path) -> str:
    """The loose module in root/mods and a fake distribution (entry points into root/site/plugstudy_ep.py) in
    root/site; the PYTHONPATH that makes both importable."""
    mods, site = root / "mods", root / "site"
    mods.mkdir(parents=True)
    (mods / f"{LOOSE}.py").write_text(textwrap.dedent(REWARDS))
    info = site / f"plugstudy_fake-{DIST_VERSION}.dist-info"
    info.mkdir(parents=True)
    (site / f"{ENTRY}.py").write_text(textwrap.dedent(REWARDS))
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: plugstudy-fake\nVersion: {DIST_VERSION}\n")
    (info / "entry_points.txt").write_text(f"[studykit.rewards]\nplugstudy_short = {ENTRY}:short\n"
                                           f"[studykit.estimators]\nplugstudy_centred = {ENTRY}:centred\n")
    return os.pathsep.join([str(mods), str(site)])


def _study(root: Path, name: str, raises: bool) -> Path:
    """The smoke study with ground truth, the loose pair, the entry-point pair and (`raises`) a raising reward."""
    study = yaml.safe_load(SMOKE.read_text())
    conditions = {
        "ground_truth": {"rq": "rq1"},
        "loose": {"rq": "rq1", "claim": "short_loose", "card": CARDS["short_loose"], "overrides": {
            "reward": {"name": f"{LOOSE}:short", "options": {"max_chars": 400}},
            "algo": {"estimator": f"{LOOSE}:centred", "estimator_options": {"scale": 1.0}}}},
        "entry": {"rq": "rq1", "claim": "short_entry", "card": CARDS["short_entry"], "overrides": {
            "reward": {"name": "plugstudy_short"}, "algo": {"estimator": "plugstudy_centred"}}},
        "raises": {"rq": "rq1", "overrides": {"reward": {"name": f"{LOOSE}:boom"}}},
    }
    if not raises:
        del conditions["raises"]
    study.update(name=name, base=str(ROOT / "params/toy/smoke_base.yaml"), alignment=None, conditions=conditions)
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _importable(monkeypatch, pythonpath: str) -> None:
    """The plug-ins importable here (sys.path: the study process validates every cell) and in child processes."""
    for entry in reversed(pythonpath.split(os.pathsep)):
        monkeypatch.syspath_prepend(entry)
    for mod in (LOOSE, ENTRY):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([pythonpath] + ([old] if old else [])))


def _check(work: Path, name: str, uri: str, rc: int, raises: bool) -> None:
    """What both executors must leave: the raising cell (when the study has it) failed alone, the plug-in cells'
    runs FINISHED with their identity tags, and the verdict table has their rows and their cards."""
    from mlflow.tracking import MlflowClient

    summary = json.loads((work / "outputs" / name / "summary.json").read_text())
    status = {o["name"]: o["status"] for o in summary}
    expected = {"ground_truth-custom-toy-s0": "done", "loose-custom-toy-s0": "done", "entry-custom-toy-s0": "done"}
    assert status == expected | ({"raises-custom-toy-s0": "failed"} if raises else {}), summary
    assert rc == (1 if raises else 0)  # a failed cell fails the study's exit code
    failed = json.loads((work / "outputs" / name / "failed.json").read_text())
    assert [f["name"] for f in failed] == (["raises-custom-toy-s0"] if raises else [])
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = {r.data.tags["condition"]: r for r in client.search_runs([exp.experiment_id], "tags.rq = 'rq1'")}
    if raises:  # its run FAILED, the plug-in named in the run and in failed.json
        assert f"reward plug-in '{LOOSE}:boom'" in failed[0]["error"] and "LookupError" in failed[0]["error"]
        assert runs["raises"].info.status == "FAILED"
        assert f"{LOOSE}:boom" in runs["raises"].data.tags["status_reason"]
    loose, entry = runs["loose"].data.tags, runs["entry"].data.tags
    assert runs["loose"].info.status == runs["entry"].info.status == "FINISHED"
    assert loose["plugin.reward"].startswith(f"{LOOSE}:short#") and loose["plugin.estimator"].startswith(
        f"{LOOSE}:centred#")
    assert entry["plugin.reward"].startswith(f"{ENTRY}:short=={DIST_VERSION}#")
    assert entry["plugin.estimator"].startswith(f"{ENTRY}:centred=={DIST_VERSION}#")
    assert "plugin.reward" not in runs["ground_truth"].data.tags
    for run in (runs["loose"], runs["entry"]):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/reward_mean")]
        assert steps == [1, 2, 3]  # smoke_base.yaml's three steps, each scored by the plug-in

    report = json.loads((work / "reports" / name / "verdicts.json").read_text())
    rows = {r["claim"]: r for r in report["records"]}
    assert {"ground_truth", "short_loose", "short_entry"} <= set(rows) and "raises" not in rows
    claims = {c["claim"]: c for c in report["claims"]}
    assert claims["short_loose"]["predicts"] == claims["short_entry"]["predicts"] == "holds-everywhere"
    assert claims["short_loose"]["outcome"] in ("came true", "did not", "cannot tell")
    md = (work / "reports" / name / "verdicts.md").read_text()
    for claim, card in CARDS.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {claim} |") and card["source"] in x)
        assert card["text"] in line and "holds-everywhere" in line


def test_the_ray_task_gets_the_study_process_pythonpath(tmp_path):
    here = str(tmp_path)
    got = forwarded_pythonpath(f"/abs/mods{os.pathsep}{os.pathsep}rel/site", cwd=tmp_path)
    assert got == os.pathsep.join(["/abs/mods", str(tmp_path / "rel/site"), "${PYTHONPATH}"])
    assert forwarded_pythonpath(None) is None and forwarded_pythonpath(os.pathsep) is None
    assert task_env("http://h:1", {"PYTHONPATH": here})["PYTHONPATH"] == f"{here}{os.pathsep}${{PYTHONPATH}}"
    assert "PYTHONPATH" not in task_env("http://h:1", {"HOME": "/root"})


@pytest.mark.slow
def test_plugins_run_a_study_through_the_local_executor(tmp_path, monkeypatch, toy_cache):
    _importable(monkeypatch, _plugins(tmp_path))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    path = _study(tmp_path, "plugstudy", raises=True)
    rc = cli.main(["study", str(path), "--workers", "2"])
    _check(work, "plugstudy", uri, rc, raises=True)


@pytest.mark.slow
def test_plugins_run_a_study_through_ray(tmp_path, monkeypatch, toy_cache):
    import ray

    from ray_smoke import _init_ray, start_server, stop_server

    work = tmp_path / "work"
    work.mkdir()
    server, uri = start_server(work)
    if ray.is_initialized():  # an earlier test's instance (RayExecutor leaves its own running): its workers'
        ray.shutdown()  # environment is unknown here
    _init_ray(ray)  # before PYTHONPATH names the plug-ins: the workers do not inherit it
    try:
        _importable(monkeypatch, _plugins(tmp_path))
        monkeypatch.chdir(work)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        path = _study(tmp_path, "plugstudy_ray", raises=False)  # the raising cell: in the local test only
        rc = cli.main(["study", str(path), "--executor", "ray", "--tracking-uri", uri])
        _check(work, "plugstudy_ray", uri, rc, raises=False)
    finally:
        ray.shutdown()
        if server.poll() is None:
            stop_server(server, uri)
