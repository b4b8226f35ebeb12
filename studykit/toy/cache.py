"""Build-once cache of toy models: `ensure_built(name, **knobs) -> folder`, `load(name, **knobs)`.

An entry lives at `$STUDYKIT_CACHE/toy/<name>-<recipe key>/` (default cache `~/.cache/studykit`) and holds
the `save_pretrained` model and tokenizer, `recipe.json` and a marker `BUILD_OK.json` with the SHA-256 of
every other file. Builds go to a temporary folder beside it, are checked by loading them back with the
Auto classes, and are renamed into place atomically. An entry without a marker, with a file whose hash
no longer matches, or with unreadable JSON is rebuilt, never loaded. An `fcntl` lock per entry makes
parallel processes wait for one build instead of racing (POSIX only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from studykit.infra.locks import file_lock
from .presets import ToyRecipe, recipe_for

MARKER = "BUILD_OK.json"
_JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "recipe.json")


def cache_root() -> Path:
    """The toy cache folder: `$STUDYKIT_CACHE/toy`, default `~/.cache/studykit/toy`."""
    return Path(os.environ.get("STUDYKIT_CACHE") or "~/.cache/studykit").expanduser() / "toy"


def entry_dir(name: str, recipe: ToyRecipe) -> Path:
    return cache_root() / f"{name.removeprefix('toy:')}-{recipe.key()}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in `folder` except the marker."""
    return {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}


def is_valid(folder: Path) -> bool:
    """True when the entry is complete: marker present, every hash matches, the JSON files parse."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        if marker.get("files") != file_hashes(folder):
            return False
        for name in _JSON_FILES:
            json.loads((folder / name).read_text())
    except (OSError, ValueError, AttributeError):
        return False
    return True


def _write_entry(tmp: Path, name: str, recipe: ToyRecipe, progress: bool, on_step=None) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .pretrain import train
    from .tokenizer import build_tokenizer

    model = train(recipe, progress=progress, desc=f"toy:{name}", on_step=on_step)
    model.save_pretrained(tmp)
    build_tokenizer().save_pretrained(tmp)
    info = {"name": name, "key": recipe.key(), "recipe": recipe.model_dump()}
    (tmp / "recipe.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    AutoModelForCausalLM.from_pretrained(tmp)  # a folder that does not load back is never published
    AutoTokenizer.from_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({"files": file_hashes(tmp)}, indent=2))


def _clear(path: Path) -> None:
    """Move `path` aside (atomic) and delete it."""
    if path.exists():
        aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex[:8]}")
        os.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)


def is_built(name: str, **knobs: Any) -> bool:
    """Whether toy model `name` with `knobs` has a valid cache entry (cheap: no torch import)."""
    name = name.removeprefix("toy:")
    return is_valid(entry_dir(name, recipe_for(name, **knobs)))


def ensure_built(name: str, *, progress: bool = True, on_step=None, **knobs: Any) -> Path:
    """The cache folder of toy model `name` (`strong`, `weak-method`, `weak-skill`, `custom`, with or
    without the `toy:` prefix) with `knobs` replacing recipe fields, built first if missing or corrupt.
    `on_step(done, total)` is passed to the pretraining loop (progress reporting)."""
    name = name.removeprefix("toy:")
    recipe = recipe_for(name, **knobs)
    final = entry_dir(name, recipe)
    if is_valid(final):
        return final
    with file_lock(final.with_name(f".{final.name}.lock")):
        if is_valid(final):  # another process built it while we waited
            return final
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        print(f"studykit: building toy:{name} into {final}", file=sys.stderr)
        try:
            _write_entry(tmp, name, recipe, progress, on_step)
            _clear(final)
            os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def load(name: str, *, progress: bool = True, **knobs: Any):
    """`(model, tokenizer)` of toy model `name`, built first if needed; the model is in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_built(name, progress=progress, **knobs)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
