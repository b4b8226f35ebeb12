"""Every run notebook executed top to bottom with its own defaults (no injected parameters), as a person opening it
would: each logs a FINISHED run naming the notebook as its source. The defaults' toy model is the suite's learner
model (the same knobs, so the session's toy cache already holds it). The compare notebook runs in tests/test_study.py
on the smoke study (its default study file is the full toy study). `20_your_claim` runs at its CI size (`size:
tiny`: the smoke study's model, one seed, 2 steps), its own small study inside the kernel; the full size is timed
by hand (README "Test your own claim")."""

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


def test_your_claim_notebook_runs_a_tiny_study(tmp_path, monkeypatch, toy_cache):
    import json

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    name = "20_your_claim.ipynb"
    out = tmp_path / name
    rc, tail = LocalExecutor(tmp_path / "nb", uri).run(name, ROOT / "notebooks" / name, {"size": "tiny", "uri": uri},
                                                       out)
    assert rc == 0, tail
    text = "\n".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert text.count("refused: invalid config") == 2  # the two bad plug-ins, each named with its field
    assert "reward.options: reward plug-in" in text and "has no attribute 'long_answer'" in text
    assert "prediction 'holds-everywhere':" in text
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("your_claim_tiny").experiment_id], "tags.rq = 'rq1'")
    by_claim = {r.data.tags["claim"]: r for r in runs}
    assert set(by_claim) == {"ground_truth", "short_answer"} and all(r.info.status == "FINISHED" for r in runs)
    assert by_claim["short_answer"].data.tags["plugin.reward"].startswith("my_claim.rewards:short_answer")
    report = json.loads((tmp_path / "reports/your_claim_tiny/verdicts.json").read_text())
    (check,) = [c for c in report["claims"] if c["claim"] == "short_answer"]
    assert check["predicts"] == "holds-everywhere" and check["outcome"] in ("came true", "did not", "cannot tell")
