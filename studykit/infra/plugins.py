"""Plug-ins: a user's own reward, advantage estimator or task, named in a config by import path or entry point.

A name is resolved as
* an import path `package.module:attribute` (the module must be importable: on sys.path / PYTHONPATH, or an
  installed package), or
* a bare name registered by an installed distribution under the kind's entry-point group (`GROUPS`:
  `studykit.rewards`, `studykit.estimators`, `studykit.tasks`), e.g. in its pyproject.toml
  `[project.entry-points."studykit.rewards"] short_answer = "my_claim.rewards:short_answer"`.
The shipped names are looked up first; an entry point that takes a shipped name is an error (it would be ambiguous),
as is one name registered with two different targets.

Identity (`Plugin.identity`, part of the config hash of a run that uses the plug-in and its `plugin.<kind>` tag):
the import path, the version of the distribution that provides the module (an entry point's distribution, or the
installed package the module belongs to) and, always, a hash of the source file that defines the attribute, so that
editing a plug-in's code (installed in editable mode or not) changes the hash and its cells run again. Only that one
file is hashed: a change in a helper module the plug-in imports is not seen (bump the version, or edit the file).

Resolve once: `lookup` is what callers use. It keeps each resolved plug-in per (kind, name, shipped names, sys.path)
for the life of the process and resolves again (`resolve`: import, maybe reload, hash the file) only when the stat
(mtime_ns, size, inode) of the plug-in's module file or defining file changed, so a config hash, a `params check` and
every training step cost a few stat calls, and an edited plug-in still gets its new hash in the next check or run.
An edit that keeps the size and lands within the file system's mtime resolution is not seen until the next process.

What each kind's object must be is checked above this layer (studykit.scoring.plugins for rewards and estimators,
studykit.tasks for tasks). Layer 0: imports nothing from studykit.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import os
import re
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["GROUPS", "Plugin", "PluginError", "is_path", "lookup", "resolve", "entry_point_names", "check_no_clash",
           "clear_cache"]

GROUPS = {"reward": "studykit.rewards", "estimator": "studykit.estimators", "task": "studykit.tasks"}
_IDENT = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_PATH = re.compile(rf"^{_IDENT}:{_IDENT}$")


class PluginError(ValueError):
    """A plug-in that cannot be found, imported or called as its interface says; the message names it."""


@dataclass(frozen=True)
class Plugin:
    kind: str  # reward, estimator, task
    name: str  # as the config writes it
    target: str  # module:attribute
    obj: Any
    identity: str

    def __str__(self) -> str:
        return f"{self.kind} plug-in {self.name!r}" + ("" if self.name == self.target else f" ({self.target})")


def is_path(name: str) -> bool:
    """`name` has the form `package.module:attribute`."""
    return bool(_PATH.match(name))


@lru_cache(maxsize=8)
def _entry_points(group: str, path: tuple[str, ...]) -> dict[str, metadata.EntryPoint]:
    """{name: entry point} of `group` on sys.path `path` (the cache key: a changed sys.path looks again)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        old = found.get(ep.name)
        if old is not None and old.value != ep.value:
            raise PluginError(f"entry point {ep.name!r} of group {group!r} is registered twice, as {old.value!r} "
                              f"({_dist_name(old)}) and {ep.value!r} ({_dist_name(ep)}); expected one")
        found.setdefault(ep.name, ep)
    return found


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"distribution {dist.metadata['Name']} {dist.version}" if dist is not None else "unknown distribution"


def entry_point_names(kind: str) -> list[str]:
    """The bare names installed distributions register for `kind`."""
    return sorted(_entry_points(GROUPS[kind], tuple(sys.path)))


def check_no_clash(kind: str, shipped: tuple[str, ...] | list[str]) -> None:
    """PluginError when an installed distribution registers one of studykit's shipped names for `kind`."""
    eps = _entry_points(GROUPS[kind], tuple(sys.path))
    for name in shipped:
        if name in eps:
            raise PluginError(f"entry point {name!r} of group {GROUPS[kind]!r} ({_dist_name(eps[name])}, "
                              f"{eps[name].value!r}) clashes with studykit's shipped {kind} {name!r}; expected "
                              f"another name (rename the entry point)")


_CACHE: dict[tuple, tuple[Plugin, tuple]] = {}  # (kind, name, shipped, sys.path) -> (plugin, stamps of its files)
_CACHE_LOCK = threading.Lock()


def lookup(kind: str, name: str, shipped: tuple[str, ...] | list[str] = ()) -> Plugin:
    """`resolve(kind, name, shipped)`, kept for the process while the plug-in's files are unchanged (stat)."""
    key = (kind, name, tuple(shipped), tuple(sys.path))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and _stamps(hit[0]) == hit[1]:
        return hit[0]
    plugin = resolve(kind, name, shipped)
    with _CACHE_LOCK:
        _CACHE[key] = (plugin, _stamps(plugin))
    return plugin


def clear_cache() -> None:
    """Forget every resolved plug-in (the next `lookup` resolves again)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _stamps(plugin: Plugin) -> tuple:
    """(path, mtime_ns, size, inode) of the plug-in's module file and defining file (None for a missing one)."""
    module_name = plugin.target.partition(":")[0]
    files = {_file_of(sys.modules.get(module_name)), _defining_file(plugin.obj, sys.modules.get(module_name))}
    out = []
    for file in sorted(f for f in files if f):
        try:
            st = os.stat(file)
            out.append((file, st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((file, None))
    return tuple(out)


def resolve(kind: str, name: str, shipped: tuple[str, ...] | list[str] = ()) -> Plugin:
    """The object `name` (an import path, or an entry point's bare name) names, with its identity: imported (or
    re-imported when its file changed) and hashed on every call; callers use `lookup`."""
    group = GROUPS[kind]
    check_no_clash(kind, shipped)
    if is_path(name):
        target, dist = name, None
    else:
        eps = _entry_points(group, tuple(sys.path))
        if name not in eps:
            installed = ", ".join(sorted(eps)) or "none installed"
            raise PluginError(f"got {name!r}; expected a shipped {kind} ({', '.join(map(repr, shipped))}), an entry point of "
                              f"group {group!r} ({installed}), or an import path package.module:attribute")
        target, dist = eps[name].value, getattr(eps[name], "dist", None)
        if not is_path(target):
            raise PluginError(f"entry point {name!r} of group {group!r} points at {target!r}; expected "
                              "package.module:attribute")
    module_name, _, attr = target.partition(":")
    module = _import(module_name, name, kind)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{kind} plug-in {name!r}: module {module_name!r} ({_file_of(module)}) has no "
                              f"attribute {attr!r}; expected it to define {attr}")
        obj = getattr(obj, part)
    version = dist.version if dist is not None else _installed_version(module_name)
    digest = _digest(_defining_file(obj, module))
    identity = target + (f"=={version}" if version else "") + f"#{digest}"
    return Plugin(kind, name, target, obj, identity)


_LOADED: dict[str, str] = {}  # module name -> digest of its file when it was imported


def _import(module_name: str, name: str, kind: str):
    """The module, imported (and re-imported when its file changed since: the identity must match the code run)."""
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            importlib.invalidate_caches()  # a file created since the last import attempt
            module = importlib.import_module(module_name)
        digest = _digest(_file_of(module))
        if _LOADED.setdefault(module_name, digest) != digest:
            module = importlib.reload(module)
            _LOADED[module_name] = digest
        return module
    except ModuleNotFoundError as err:
        raise PluginError(f"{kind} plug-in {name!r}: cannot import module {module_name!r} ({err}); expected a module "
                          "on sys.path (PYTHONPATH) or an installed package") from None
    except Exception as err:  # noqa: BLE001 - whatever the user's module raises on import
        raise PluginError(f"{kind} plug-in {name!r}: importing module {module_name!r} raised "
                          f"{type(err).__name__}: {err}") from None


def _file_of(module) -> str | None:
    return getattr(module, "__file__", None)


def _defining_file(obj: Any, module) -> str | None:
    """The source file of the module that defines `obj` (a re-exported function: its own module's file)."""
    owner = sys.modules.get(getattr(obj, "__module__", None) or "")
    return _file_of(owner) or _file_of(module)


def _digest(file: str | None) -> str:
    if not file or not Path(file).is_file():
        return "nosource"
    return hashlib.sha256(Path(file).read_bytes()).hexdigest()[:12]  # read each time: an edit within one mtime tick


def _installed_version(module_name: str) -> str | None:
    """The version of the installed distribution whose top-level package is the module's (None for a loose one)."""
    top = module_name.split(".")[0]
    dists = _packages(tuple(sys.path)).get(top) or []
    try:
        return metadata.version(dists[0]) if dists else None
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=4)
def _packages(path: tuple[str, ...]) -> dict[str, list[str]]:
    return metadata.packages_distributions()
