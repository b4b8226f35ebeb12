"""Every run notebook executed top to bottom with its own defaults (no injected parameters), as a person opening it
would: each logs a FINISHED run naming the notebook as its source. The defaults' toy model is the suite's learner
model (the same knobs, so the session's toy cache already holds it). The compare notebook runs in tests/test_study.py
on the smoke study (its default study file is the full toy study)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from studykit.study.executors.local import LocalExecutor

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUN_NOTEBOOKS = ["00_alignment.ipynb", "01_reward_signal.ipynb", "02_one_shot.ipynb", "03_negative_samples.ipynb"]


def test_the_demo_model_is_the_suites_learner(toy_learner):
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_build", ROOT / "notebooks/_build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name in RUN_NOTEBOOKS:  # else each notebook test below builds its own toy model first (minutes)
        assert {k: v for k, v in build.defaults(name)["model"]["toy"].items() if k in toy_learner} == toy_learner


@pytest.mark.parametrize("name", RUN_NOTEBOOKS)
def test_run_notebook_runs_with_its_own_defaults(tmp_path, monkeypatch, toy_learner, name):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    out = tmp_path / name
    rc, tail = LocalExecutor(tmp_path / "outputs", uri).run(name, ROOT / "notebooks" / name, {}, out)
    assert rc == 0, tail
    nb = nbformat.read(out, as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("demo").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.source.name"] == f"notebooks/{name}"
    assert "mlflow.parentRunId" not in run.data.tags  # no study: a top-level run
