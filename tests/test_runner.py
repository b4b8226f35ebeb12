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


def test_a_failed_cells_summary_line_is_the_error_not_the_logs_last_line(tmp_path):
    # Regression (issue 21): the summary showed "Writing model shards: 100%", the line after the traceback.
    from studykit.study.executors.local import error_tail
    from studykit.study.runner import CellOutcome, StudySummary, error_line, format_summary

    log = tmp_path / "cell.log"
    log.write_text("Exception encountered at \"In [4]\":\nTraceback (most recent call last):\n  File \"x\", line 1\n"
                   "\x1b[0;31mtorch.OutOfMemoryError\x1b[0m: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                   "Writing model shards: 100%|##########| 2/2 [00:01<00:00]\n")
    summary = StudySummary("s", [CellOutcome("cell-a", "failed", error=error_tail(log)),
                                 CellOutcome("cell-b", "failed", error="exited 1\nno traceback here\n")])
    lines = format_summary(summary).splitlines()
    assert lines[1] == "  FAILED cell-a: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert lines[2] == "  FAILED cell-b: no traceback here"  # no error line: the last line, as before
    assert error_line("error: --out x: exists\nbye") == "error: --out x: exists"
    assert error_line("KeyboardInterrupt\n[progress] 3/4") == "KeyboardInterrupt" and error_line("") == ""


def test_a_full_disk_is_found_through_wrapped_errors():
    import errno
    import sqlite3

    from studykit.infra.diskfull import full_path

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise RuntimeError("(sqlite3.OperationalError) while logging a metric") from inner
    except RuntimeError as wrapped:
        assert full_path(wrapped, "sqlite:////data/mlruns/mlflow.db") == "/data/mlruns/mlflow.db"
    assert full_path(OSError(errno.EDQUOT, "Disk quota exceeded", "/home/u/out.ipynb")) == "/home/u/out.ipynb"
    assert full_path(OSError(errno.EACCES, "Permission denied", "/x")) is None and full_path(ValueError("x")) is None
