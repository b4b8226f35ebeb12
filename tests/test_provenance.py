"""Provenance: the code version and base-weights tags (studykit.tracking.provenance), verdict rows whose runs differ in them
(refused: `n/a (mixed provenance)`), runs of older stores without them (flagged `unknown`, not refused), and the
study's handling of finished cells run by other code (a warning, or `--rerun-stale`)."""

from __future__ import annotations

import json
import subprocess
import threading

import numpy as np
import pandas as pd
import pytest

from studykit.study import claims
from studykit.tracking import provenance
from studykit.analysis import verdicts
from studykit.analysis import verdict_text
from studykit.config.schema import validate
from studykit.analysis.runs import Counts

N = 8
IDS = [f"toy-{i}" for i in range(40)]


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_code_version_is_the_sha_plus_a_digest_of_uncommitted_package_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "repo" / "studykit"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (tmp_path / "repo" / "README.md").write_text("hi\n")
    root = tmp_path / "repo"
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c")
    monkeypatch.setattr(provenance, "_PKG", pkg)
    version = provenance.code_version.__wrapped__
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout[:12]
    assert version() == sha
    (root / "README.md").write_text("edited\n")  # outside the package and notebooks: not code
    assert version() == sha
    (pkg / "a.py").write_text("x = 2\n")
    dirty = version()
    assert dirty.startswith(f"{sha}+dirty.") and version() == dirty  # the same edit: the same version
    (pkg / "a.py").write_text("x = 3\n")
    assert version() != dirty
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "new.py").write_text("y = 1\n")  # an untracked module counts
    assert version().startswith(f"{sha}+dirty.")
    outside = tmp_path / "plain" / "studykit"
    outside.mkdir(parents=True)
    monkeypatch.setattr(provenance, "_PKG", outside)
    assert version().startswith("pkg-")  # not in git: the package version


def test_base_weights_identify_toy_builds_local_folders_and_hub_snapshots(tmp_path, monkeypatch):
    toy = tmp_path / "custom-abc123"
    toy.mkdir()
    (toy / "BUILD_OK.json").write_text(json.dumps({"files": {"model.safetensors": "aa"}}))
    first = provenance.base_weights(str(toy))
    assert first.startswith("toy:custom-abc123@")
    (toy / "BUILD_OK.json").write_text(json.dumps({"files": {"model.safetensors": "bb"}}))  # other CPU, other bytes
    assert provenance.base_weights(str(toy)) != first

    local = tmp_path / "ckpt"
    local.mkdir()
    (local / "config.json").write_text("{}")
    (local / "model.safetensors").write_bytes(b"\0" * (3 << 20))
    before = provenance.base_weights(str(local))
    assert before.startswith("local:ckpt@")
    with open(local / "model.safetensors", "r+b") as fh:  # the last MiB changes
        fh.seek((3 << 20) - 10)
        fh.write(b"1")
    assert provenance.base_weights(str(local)) != before

    import huggingface_hub.constants as hf

    snap = tmp_path / "hub" / "models--org--m" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--m" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--m" / "refs" / "main").write_text("c" * 40)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert provenance.base_weights("org/m") == "hub:org/m@" + "c" * 40
    assert provenance.base_weights("org/absent") == "hub:org/absent@unresolved"


def test_a_resume_by_other_code_is_recorded():
    tags = provenance.resumed({"code_version": "old", "base_weights": "hub:x@unresolved"}, "x")
    assert tags["code_version"] == f"old then {provenance.code_version()}"
    assert "base_weights" not in tags  # unchanged: left as it is
    assert provenance.resumed({}, "x")["code_version"] == f"unknown then {provenance.code_version()}"  # older code
    assert provenance.resumed({"code_version": f"old then {provenance.code_version()}", "base_weights":
                               "hub:x@unresolved"}, "x") == {}  # resumed again by the same code: nothing new


def _table(tags: dict[str, dict]):
    """A pure verdict table: claim x = gt on both seeds (ratio 1, `holds`) with the given per-run tags."""
    def run(rid, claim, seed):
        return {"run_id": rid, "rq": "rq1", "claim": claim, "condition": claim, "model": "m", "task": "toy",
                "seed": str(seed), "alignment": None, "metrics.eval/toy/pass_at_1": 0.5, **tags.get(rid, {})}

    gains = {"g0": 2, "g1": 2, "c0": 2, "c1": 2}  # equal seeds: a decisive interval with two seeds (t, 1 df)
    runs = pd.DataFrame([run("g0", "ground_truth", 0), run("g1", "ground_truth", 1), run("c0", "x", 0),
                         run("c1", "x", 1)])
    pre = np.array([2, 3, 4, 5] * 10)
    bump = np.eye(1, 40, 0, dtype=int)[0]  # seed 1 gains one more on problem 0, so the seeds are not copies
    counts = {rid: {0: Counts(0, N, IDS, pre), 5: Counts(5, N, IDS, pre + g + bump * rid.endswith("1"))}
              for rid, g in gains.items()}
    return verdicts.verdict_table(runs, pd.DataFrame(columns=["run_id", "key", "step", "value"]), counts)


SAME = {"code_version": "abc", "base_weights": "toy:custom-1@ff"}


def test_a_row_whose_runs_share_code_and_weights_gets_its_verdict():
    table = _table({rid: SAME for rid in ("g0", "g1", "c0", "c1")})
    row = table[table["claim"] == "x"].iloc[0]
    assert row["verdict"] == "holds" and row["provenance"] == "same" and row["note"] == ""
    assert "mixed or unknown provenance" not in verdict_text.markdown(table)


@pytest.mark.parametrize("key, value", [("code_version", "def"), ("base_weights", "toy:custom-1@00")])
def test_a_row_mixing_code_versions_or_weights_is_refused_and_listed(key, value):
    tags = {rid: SAME for rid in ("g0", "g1", "c0", "c1")} | {"g1": SAME | {key: value}}  # gt seed 1 differs
    table = _table(tags)
    row = table[table["claim"] == "x"].iloc[0]
    assert row["verdict"] == "n/a (mixed provenance)" and row["provenance"] == "mixed"
    assert row["ratio"] == pytest.approx(1.0)  # the numbers stay visible
    assert f"{key} differs" in row["note"] and f"ground_truth s1: {value}" in row["note"]
    base = table[table["claim"] == "ground_truth"].iloc[0]
    assert base["verdict"] == "baseline" and base["provenance"] == "mixed"  # its own seeds differ
    md = verdict_text.markdown(table)
    assert "### Rows with mixed or unknown provenance" in md and "- mixed: **x** on m / toy" in md
    assert verdict_text.records(table)[0]["provenance"] == "mixed"


def test_runs_of_older_stores_load_as_unknown_provenance_not_refused():
    table = _table({"c0": SAME, "c1": SAME})  # the ground-truth runs carry no tags (older code)
    row = table[table["claim"] == "x"].iloc[0]
    assert row["verdict"] == "holds" and row["provenance"] == "unknown"
    assert "unknown provenance" in row["note"] and "ground_truth s0 has no code_version" in row["note"]
    assert "- unknown: **x** on m / toy (holds)" in verdict_text.markdown(table)


# ------------------------------------------------------------------------------------- the study and stale cells


@pytest.fixture
def store(tmp_path):
    from studykit.tracking import experiment as tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = validate({"study": "s", "rq": "rq1", "claim": "random", "tracking": {"uri": uri}})
    mlc = tracking.client(uri)
    exp = tracking.experiment_id("s", uri)
    rid = mlc.create_run(exp, tags=tracking.run_tags(cfg) | {"code_version": "old"}).info.run_id
    nb = tmp_path / "cell.ipynb"
    nb.write_text("{}")
    mlc.log_artifact(rid, str(nb), artifact_path="notebook")
    mlc.set_terminated(rid, "FINISHED")
    return uri, cfg, rid, tmp_path


def test_settle_reruns_a_cell_finished_by_other_code_only_when_asked(store):
    uri, cfg, rid, tmp = store
    assert claims.settle(cfg, uri, tmp / "out.ipynb").state == "done"  # reused by default
    assert claims.settle(cfg, uri, tmp / "out.ipynb", require_version="old").state == "done"
    assert claims.settle(cfg, uri, tmp / "out.ipynb", require_version="new").state == "todo"
    from studykit.tracking import experiment as tracking

    assert tracking.client(uri).get_run(rid).info.status == "FINISHED"  # the old run is left as it is


def test_the_study_warns_about_reused_stale_cells_and_reruns_them_when_asked(store, capsys, monkeypatch):
    from studykit.study import runner as study_runner
    from studykit.study.spec import Cell

    uri, cfg, rid, tmp = store
    monkeypatch.setattr(provenance, "code_version", lambda: "new")
    cells = [Cell("random-s0", tmp / "nb.ipynb", cfg, {})]
    ctx = study_runner._Context(tmp, uri, None, threading.Event())
    outcomes = {"random-s0": study_runner.CellOutcome("random-s0", "skipped", rid)}
    assert study_runner._stale_cells(ctx, cells, outcomes, rerun=False) == []
    err = capsys.readouterr().err
    assert "warning: reusing 1 finished cells run by other code than new" in err and "--rerun-stale" in err
    assert "random-s0" in outcomes and ctx.require_version is None
    assert study_runner._stale_cells(ctx, cells, outcomes, rerun=True) == cells
    assert "rerunning 1 finished cells" in capsys.readouterr().err
    assert outcomes == {} and ctx.require_version == "new"
    monkeypatch.setattr(provenance, "code_version", lambda: "old")  # the current code: nothing said, nothing rerun
    outcomes = {"random-s0": study_runner.CellOutcome("random-s0", "skipped", rid)}
    assert study_runner._stale_cells(ctx, cells, outcomes, rerun=True) == [] and capsys.readouterr().err == ""
    from studykit.cli import commands as cli

    assert cli.build_parser().parse_args(["study", "x.yaml", "--rerun-stale"]).rerun_stale


def test_studykit_report_lists_the_mixed_rows(tmp_path, capsys):
    from pathlib import Path

    import yaml
    from mlflow.tracking import MlflowClient
    from test_analysis import _counts, _history, _log

    from studykit.cli import commands as cli
    from studykit.study.spec import expand

    root = Path(__file__).resolve().parent.parent
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mixed", "base": str(root / "params/toy/smoke_base.yaml"),
        "grid": {"models": ["toy:custom"], "tasks": ["toy"], "seeds": [0]},
        "conditions": {"ground_truth": {"rq": "rq1"}, "random": {"rq": "rq1", "overrides": {"reward": {
            "name": "random"}}}}}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("mixed", artifact_location=(tmp_path / "artifacts").as_uri())
    for cell, gains, code in zip(expand(path), ([(100, 2)], [(90, 2)]), ("old", "new")):
        before, after = _counts("toy:strong", gains)
        rid = _log(client, exp, cell.config, _history(before, after), {0: before, 20: after})
        client.set_tag(rid, "code_version", code)
        client.set_tag(rid, "base_weights", "toy:custom-x@00")
    out = tmp_path / "reports"
    assert cli.main(["report", str(path), "--uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    tail = printed[printed.index("provenance: 1 rows"):]
    assert "- mixed: **random** on toy:custom / toy (n/a (mixed provenance))" in tail
    meta = json.loads((out / "mixed/verdicts.json").read_text())
    assert meta["provenance"] == {"mixed": ["random | toy:custom | toy"], "unknown": []}


def test_the_sets_report_names_models_whose_runs_mix_versions():
    from studykit.analysis.set_report import provenance_lines

    runs = pd.DataFrame([{"model": "m", "task": "toy", "claim": c, "condition": c, "seed": "0", **tags}
                         for c, tags in (("alignment", SAME), ("ground_truth", SAME),
                                         ("random", SAME | {"code_version": "def"}))]
                        + [{"model": "n", "task": "toy", "claim": "random", "condition": "random", "seed": "0",
                            **SAME}])
    lines = provenance_lines(runs)
    assert len(lines) == 1 and lines[0].startswith("- m / toy: mixed provenance: code_version differs")
