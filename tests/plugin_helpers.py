"""Shared by the plug-in tests: the worked example's folder and a loose module written into a test's tmp_path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "my_claim"


def loose_module(tmp_path: Path, monkeypatch, name: str, source: str) -> str:
    """A module `name` in tmp_path, importable (tmp_path on sys.path, any cached module of that name dropped)."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)  # another test's module of the same name
    return name
