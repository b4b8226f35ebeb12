"""Where a run's numbers come from: the code that ran it and the base weights it started from.

Every training and alignment run carries two tags (set at its start; a resume by other code or from other
weights records both values, so the run reads as differing from any single version):

- `code_version`: `<git sha (12)>` of the checkout studykit runs from, plus `+dirty.<8 hex>` when the package
  folder or `notebooks/` have uncommitted changes (the hex digests `git diff HEAD` and the untracked files there,
  so two runs of the same uncommitted edit agree and two different edits do not); outside git
  `pkg-<installed version>` (which cannot tell edits apart: it is what is known).
- `base_weights`:
  * `toy:<entry>@<16 hex>` for a toy build: its cache folder name (preset and recipe key) and a digest of the
    SHA-256 of every file its `BUILD_OK.json` lists, so two nodes whose CPUs built different bytes differ;
  * `hub:<id>@<commit>`: the snapshot commit the local Hugging Face cache resolves `main` to (`@unresolved` when
    the cache has no `config.json` of it, e.g. a model served by another path);
  * `local:<folder>@<16 hex>` for any other folder: a digest of `config.json`, the weight index files, and per
    weight file (`*.safetensors`, `*.bin`, `*.pt`, `*.pth`) its name, size and its first and last MiB (the
    whole file when under 2 MiB). Cheap (2 MiB read per file) and honest about what it covers: two checkpoints
    of the same shapes that differ only in the middle of every weight file would share it; any fine-tune or
    re-quantisation changes the tensors at both ends.

`check(runs)` compares the tags of the runs one verdict row rests on: `same`, `mixed` (some tag has two known
values) or `unknown` (no two known values differ, but a run lacks a tag: written by older code).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

CODE_TAG = "code_version"
WEIGHTS_TAG = "base_weights"
KEYS = (CODE_TAG, WEIGHTS_TAG)
_PKG = Path(__file__).resolve().parents[1]  # the studykit package folder
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_SAMPLE = 1 << 20


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=root, check=True)
    return out.stdout


@lru_cache(maxsize=1)
def code_version() -> str:
    """This process's code version (module docstring); computed once per process."""
    try:
        root = Path(_git(_PKG, "rev-parse", "--show-toplevel").strip())
        sha = _git(root, "rev-parse", "HEAD").strip()[:12]
        paths = [str(p.relative_to(root)) for p in (_PKG, root / "notebooks") if p.is_dir()]
        if not _git(root, "status", "--porcelain", "--", *paths).strip():
            return sha
        digest = hashlib.sha256(_git(root, "diff", "HEAD", "--binary", "--", *paths).encode())
        for name in sorted(_git(root, "ls-files", "--others", "--exclude-standard", "--", *paths).splitlines()):
            digest.update(name.encode() + b"\0" + (root / name).read_bytes())
        return f"{sha}+dirty.{digest.hexdigest()[:8]}"
    except (OSError, ValueError, subprocess.SubprocessError):
        return f"pkg-{_package_version()}"


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("studykit")
    except PackageNotFoundError:
        from studykit import __version__

        return __version__


def base_weights(source: str) -> str:
    """Identity of the base weights at `source` (a toy cache folder, another local folder, or a hub id)."""
    path = Path(source)
    if path.is_dir():
        from studykit.toy.cache import MARKER

        if (path / MARKER).is_file():
            files = json.loads((path / MARKER).read_text()).get("files") or {}
            blob = json.dumps(files, sort_keys=True).encode()
            return f"toy:{path.name}@{hashlib.sha256(blob).hexdigest()[:16]}"
        return f"local:{path.name}@{_folder_digest(path)}"
    return f"hub:{source}@{_hub_commit(source)}"


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        if f.name == "config.json" or f.name.endswith(".index.json"):
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        elif f.suffix in _WEIGHT_SUFFIXES:
            size = f.stat().st_size
            digest.update(f"{f.name}\0{size}\0".encode())
            with open(f, "rb") as fh:
                digest.update(fh.read(_SAMPLE))
                if size > 2 * _SAMPLE:
                    fh.seek(size - _SAMPLE)
                    digest.update(fh.read(_SAMPLE))
                else:
                    digest.update(fh.read())
    return digest.hexdigest()[:16]


def _hub_commit(repo_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub library refuses (not a repo id): nothing to resolve
        return "unresolved"
    if isinstance(found, str) and Path(found).parent.parent.name == "snapshots":
        return Path(found).parent.name
    return "unresolved"


def tags(base_path: str) -> dict[str, str]:
    """The provenance tags of a run whose policy loaded its base weights from `base_path`."""
    return {CODE_TAG: code_version(), WEIGHTS_TAG: base_weights(base_path)}


def resumed(stored: dict[str, str], base_path: str) -> dict[str, str]:
    """Tags to set when a run is resumed: a value that differs from what the run started with is recorded as
    `<before> then <now>` (`unknown then <now>` for a run older code started), so the run no longer matches either
    version alone (a verdict row with it is mixed)."""
    out = {}
    for key, now in tags(base_path).items():
        before = stored.get(key) or "unknown"
        if before != now and not before.endswith(f" then {now}"):
            out[key] = f"{before} then {now}"
    return out


@dataclass
class Provenance:
    state: str  # "same" | "mixed" | "unknown"
    detail: str = ""


def check(runs: list[tuple[str, Any]]) -> Provenance:
    """Compare the tags of (label, run) pairs (`run`: a mapping or pandas row with the tag columns)."""
    mixed, unknown = [], []
    for key in KEYS:
        values = {label: _value(run, key) for label, run in runs}
        known = {v for v in values.values() if v}
        if len(known) > 1:
            mixed.append(f"{key} differs (" + ", ".join(f"{label}: {v or 'unknown'}" for label, v in values.items())
                         + ")")
        unknown += [f"{label} has no {key}" for label, v in values.items() if not v]
    if mixed:
        return Provenance("mixed", "mixed provenance: " + "; ".join(mixed))
    if unknown:
        return Provenance("unknown", "unknown provenance (runs from older code): " + ", ".join(unknown))
    return Provenance("same")


def rows(table: Any) -> list[str]:
    """One markdown line per verdict-table row whose provenance is not `same` (mixed first)."""
    flagged = [row for _, row in table.iterrows() if row.get("provenance") in ("mixed", "unknown")]
    return [f"- {row['provenance']}: **{row['claim']}** on {row['model']} / {row['task']} ({row['verdict']})"
            for row in sorted(flagged, key=lambda r: r["provenance"] != "mixed")]


def section(table: Any) -> str:
    """The verdicts.md section listing `rows(table)`; empty when every row is `same`."""
    flagged = rows(table)
    if not flagged:
        return ""
    return ("\n### Rows with mixed or unknown provenance\n\nA mixed row (code version or base weights differ among "
            "its runs) gets no verdict; an unknown one (runs from older code, untagged) keeps its verdict.\n\n"
            + "\n".join(flagged) + "\n")


def _value(run: Any, key: str) -> str:
    value = run.get(key) if hasattr(run, "get") else None
    return value if isinstance(value, str) and value else ""


def stale(client: Any, run_ids: dict[str, str], current: str) -> list[str]:
    """The names (keys of `run_ids`: name -> run id) whose run's code version is not `current` (untagged runs of
    older code included: nothing shows they match)."""
    return [name for name, rid in run_ids.items() if client.get_run(rid).data.tags.get(CODE_TAG) != current]


def stale_warning(names: list[str], current: str, rerun: bool) -> str:
    """The line `studykit study` prints about finished cells of other code."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if rerun:
        return f"rerunning {len(names)} finished cells run by other code than {current} (--rerun-stale): {shown}"
    return (f"warning: reusing {len(names)} finished cells run by other code than {current} (or untagged, older "
            f"code): {shown}; their verdict rows are marked; `--rerun-stale` runs them again")
