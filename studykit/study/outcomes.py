"""What a study's cells came to: each cell's outcome (`CellOutcome`), the study's (`StudySummary`, its exit code),
the files the runner leaves in `outputs/<study>/` (`failed.json`, `summary.json`) and the summary it prints, with a
failed cell's one line being its error (`error_line`: the last exception line of the log, not a progress bar)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CellOutcome:
    name: str
    status: str  # "done" | "skipped" | "failed" | "interrupted" | "planned"
    run_id: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class StudySummary:
    study: str
    outcomes: list[CellOutcome]
    verdicts: str = ""
    interrupted: bool = False
    compare_error: str | None = None

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "interrupted")]

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed or self.compare_error else 0)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)  # several study processes may write it: readers never see half a file


def _write_failures(out_dir: Path, outcomes: list[CellOutcome]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "failed.json", [o.__dict__ for o in outcomes if o.status in ("failed", "interrupted")])
    _write_json(out_dir / "summary.json", [o.__dict__ for o in outcomes])


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]*(?:Error|Exception|Interrupt|Exit)(?::|$)|error:)")
"""A traceback's last line (`ValueError: ...`, `torch.OutOfMemoryError: ...`) or a CLI's `error: ...` line."""


def error_line(error: str) -> str:
    """The one line that says why a cell failed: the last exception line of its log tail (a progress bar or a
    library's chatter may follow it), else the last non-empty line."""
    lines = [_ANSI.sub("", line).strip() for line in error.splitlines()]
    lines = [line for line in lines if line]
    return next((line for line in reversed(lines) if _ERROR_LINE.match(line)), lines[-1] if lines else "")


def format_summary(summary: StudySummary) -> str:
    lines = [f"study {summary.study}: " + ", ".join(
        f"{s} {sum(o.status == s for o in summary.outcomes)}" for s in ("done", "skipped", "failed", "interrupted",
                                                                         "planned")
        if any(o.status == s for o in summary.outcomes))]
    for o in summary.failed:
        lines.append(f"  {o.status.upper()} {o.name}: {error_line(o.error or '')}")
    if summary.compare_error:
        lines.append(f"  FAILED compare: {summary.compare_error}")
    if summary.verdicts:
        lines += ["", summary.verdicts]
    return "\n".join(lines)
