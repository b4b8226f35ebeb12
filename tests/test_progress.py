"""The study's progress line (studykit.study.progress) and toy-build stage (studykit.study.executors.builds): what runs
now, the counts, the ETA from measured times; builds listed only when missing, built in a subprocess bit for bit
as in-process, and a tiny study's printed lines name the build stage and the counts."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from studykit.study.executors.builds import BuildRunner, ToyBuild, toy_builds
from studykit.study.progress import StudyProgress

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=3, warmup_steps=1, batch_size=4, hidden_size=16, intermediate_size=16, num_heads=2,
            sum_share=0.6, count_share=0.2, max_share=0.2)


def _cell(name, model="toy:custom", toy=None):
    return SimpleNamespace(name=name, config=SimpleNamespace(model=SimpleNamespace(name=model, toy=toy or {})))


def test_line_names_running_cells_counts_and_eta():
    out = io.StringIO()
    p = StudyProgress("toy", cells=4, workers=2, stream=out, skipped=1)
    p.start("a")
    assert "ETA: after the first cell finishes" in p.line()
    p.running["a"] = time.time() - 10  # a cell that took 10 s
    p.finish("a", "done", 10.0)
    p.start("b")
    p.start("c")
    line = p.line()
    assert line.startswith("[toy] 2/5 cells (done 1, skipped 1, failed 0)")
    assert "now: b 0s, c 0s" in line
    # left: b and c (10 s each, just started) and one pending cell, over 2 workers -> 15 s
    assert "ETA 15s (mean cell 10s)" in line
    p.finish("b", "failed", 3.0)
    assert "failed 1" in p.line()
    assert out.getvalue().count("\n") >= 4  # each start and finish printed a line (no terminal: plain lines)


def test_line_shows_build_steps_and_rate():
    build = ToyBuild("toy:strong", {}, "toy:strong", done=300, total=1500, started=time.time() - 100)
    p = StudyProgress("toy", cells=1, workers=1, builds={"toy:strong": build}, stream=io.StringIO())
    p.start("toy:strong")
    line = p.line()
    assert "build toy:strong 300/1500 (3.0 steps/s)" in line
    assert "ETA: after the first cell finishes" in line
    quiet = StudyProgress("toy", cells=1, workers=1, builds={"toy:strong": ToyBuild("toy:strong", {}, "toy:strong")},
                          stream=io.StringIO())
    quiet.start("toy:strong")
    assert "build toy:strong (starting" in quiet.line() and "after a build has measured its speed" in quiet.line()


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    p = StudyProgress("toy", cells=1, workers=1, stream=out, enabled=False)
    p.start("a")
    p.finish("a", "done", 1.0)
    p.close()
    assert out.getvalue() == ""


def test_toy_builds_lists_missing_models_once(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path))
    cells = [_cell("x", toy=TINY), _cell("y", toy=TINY), _cell("z", toy={**TINY, "seed": 1}),
             _cell("hub", model="Qwen/Qwen2.5-7B")]
    builds = toy_builds(cells)
    assert list(builds) == ["toy:custom", "toy:custom#2"]
    assert builds["toy:custom"].cells == ["x", "y"] and builds["toy:custom#2"].cells == ["z"]


@pytest.mark.slow
def test_subprocess_build_is_bit_identical_and_then_not_listed(tmp_path, monkeypatch):
    from studykit.toy import cache

    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path / "sub"))
    build = toy_builds([_cell("x", toy=TINY)])["toy:custom"]
    assert BuildRunner(tmp_path / "out").run(build), build.error
    assert (build.done, build.total) == (3, 3)  # progress came back from the build process
    sub = cache.file_hashes(cache.ensure_built("custom", **TINY))
    assert toy_builds([_cell("x", toy=TINY)]) == {}  # built: nothing to wait for
    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path / "here"))
    here = cache.file_hashes(cache.ensure_built("custom", progress=False, **TINY))
    assert sub == here


def test_failed_build_reports_its_error(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path))
    bad = ToyBuild("toy:custom", {"steps": 0}, "toy:custom")  # the recipe refuses steps=0
    assert not BuildRunner(tmp_path / "out").run(bad)
    assert "steps" in bad.error


@pytest.mark.slow
def test_study_prints_build_stage_and_counts(tmp_path, monkeypatch, capsys):
    from studykit.study.runner import run_study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("STUDYKIT_CACHE", str(tmp_path / "cache"))
    summary = run_study(ROOT / "params/studies/smoke.yaml", workers=2, only="alignment", compare=False)
    assert summary.exit_code == 0, summary.outcomes
    lines = capsys.readouterr().err.splitlines()
    assert any("now: build toy:custom" in line for line in lines), lines
    assert any("now: alignment-custom-toy" in line for line in lines), lines
    assert any(line.startswith("[smoke] 1/1 cells (done 1, skipped 0, failed 0)") for line in lines), lines
    _bench_reads_the_study(tmp_path)


def _bench_reads_the_study(work: Path) -> None:
    """bench/study_time.py on the study just run: its build, its one cell, the cell's startup from the run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_time", ROOT / "bench/study_time.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rep = bench.report("smoke", f"sqlite:///{work / 'mlflow.db'}", work / "outputs/smoke")
    assert rep["cells_run"] == 1 and rep["workers"] == 2
    assert [(b["label"], b["ok"]) for b in rep["builds"]] == [("toy:custom", True)]
    parts = rep["parts"]
    assert parts["startup"]["n"] == 1 and 0 < parts["startup"]["mean"] < parts["cell_wall"]["mean"]
    assert parts["outside"]["mean"] > 0 and parts["evaluation"]["sum"] >= 0
