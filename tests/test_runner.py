"""The study runner's exit code without running notebooks: a study that expands to no cells is an error (exit 2),
a failed cell or compare step is exit 1, an interruption 130."""

from __future__ import annotations

import pytest
import yaml

from studykit.cli import commands as cli
from studykit.config.schema import ConfigError
from studykit.study.runner import CellOutcome, StudySummary, run_study

from studyproc import SMOKE


def test_a_study_with_no_cells_fails(tmp_path, monkeypatch, capsys):
    spec = yaml.safe_load(SMOKE.read_text())
    spec.update(base=str((SMOKE.parent / spec["base"]).resolve()), alignment=None)
    spec["grid"]["models"] = {}
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ConfigError):
        run_study(path, progress=False)
    assert cli.main(["study", str(path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists()  # nothing was created


def test_exit_codes():
    done = [CellOutcome("a", "done"), CellOutcome("b", "skipped")]
    assert StudySummary("s", done).exit_code == 0
    assert StudySummary("s", done, compare_error="compare notebook failed").exit_code == 1
    assert StudySummary("s", [*done, CellOutcome("c", "failed")]).exit_code == 1
    assert StudySummary("s", done, interrupted=True).exit_code == 130
