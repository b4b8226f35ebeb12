"""Math tasks: the shipped evaluation sets, any local JSONL/JSON/parquet file, and DeepScaleR.

Names (see `studykit.tasks.get`):

* `math500`, `aime24`, `amc23`: shipped in `studykit/data/math/` (sources in its README.md); `load("test")`
  returns every row, other splits are an error.
* `math`: a file given by `path=` (`.jsonl`/`.ndjson`, `.json` holding a list of objects, or `.parquet`),
  with `question_field` / `answer_field` / `id_field` (defaults `problem` / `answer` / `id`; rows without the
  default `id` field get their row index). The file is one set: `load("train")` and `load("test")` both
  return all of it.
* `deepscaler`: like `math` (DeepScaleR-Preview fields problem, answer, solution) from `path=`, or with
  `hub=True` from the hub dataset `agentica-org/DeepScaleR-Preview-Dataset` (needs `datasets` and network;
  the paper trains on it). Tests never reach the network.

Correctness is `studykit.scoring.verify.math_equal` for every name (the paper's released code used exact string
equality: a known fault). `generate(n, seed, difficulty)` draws a seeded sample without replacement;
`difficulty` 1-5 keeps only that MATH level when rows carry `level`, and is ignored otherwise (departure
from the `Task` protocol's default of 1: here the default None means every level, so a plain call does not
silently narrow MATH-500 to its 43 easiest problems).
"""

from __future__ import annotations

import json
import os
import random
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from studykit.scoring.verify import math_equal
from .base import Problem

SHIPPED = {"math500": "math500.jsonl", "aime24": "aime24.jsonl", "amc23": "amc23.jsonl"}
FILE_TASKS = ("math", "deepscaler")
HUB_ID = "agentica-org/DeepScaleR-Preview-Dataset"
_FILE_SPLITS = ("train", "test")
_META_FIELDS = ("level", "subject", "type")


def splits_of(name: str) -> tuple[str, ...]:
    """The splits `load` accepts for math task `name`: shipped sets are test sets; a file is one set for both."""
    return ("test",) if name in SHIPPED else _FILE_SPLITS


@lru_cache(maxsize=None)
def shipped_size(name: str) -> int:
    """Rows of shipped set `name` (a line count of its JSONL, without parsing it)."""
    ref = resources.files("studykit").joinpath("data", "math", SHIPPED[name])
    return sum(1 for line in ref.read_text(encoding="utf-8").splitlines() if line.strip())


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL, JSON (a list of objects) or parquet file, as dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"math task file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    elif suffix == ".json":
        rows = _read_json_list(path)
    elif suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .jsonl, .ndjson, .json or .parquet")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {i} is a {type(row).__name__}, expected an object with named fields")
    return rows


def _read_jsonl(path: Path) -> list[Any]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {lineno} is not valid JSON ({e.msg})") from None
    return rows


def _read_json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of objects, got a {type(data).__name__}")
    return data


def _read_parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading {path} needs pyarrow: pip install 'studykit[dev]' or pip install pyarrow") from None
    return pq.read_table(path).to_pylist()


def _hub_rows() -> list[dict[str, Any]]:
    """DeepScaleR-Preview from the hub; any failure becomes an error that says to pass `path=`."""
    advice = f"pass path= to a local copy of {HUB_ID} (JSONL, JSON or parquet with problem, answer, solution)"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise RuntimeError(f"deepscaler: hub=True but HF_HUB_OFFLINE is set; {advice}")
    try:
        import datasets
    except ImportError:
        raise RuntimeError(f"deepscaler: hub=True needs the `datasets` package (studykit[hub]); or {advice}") from None
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")
    try:
        return [dict(r) for r in datasets.load_dataset(HUB_ID, split="train")]
    except Exception as e:  # network, auth, cache: all mean "use a local file"
        why = f"{type(e).__name__}: {e}"
        raise RuntimeError(f"deepscaler: could not load {HUB_ID} from the hub ({why}); {advice}") from e


def _level(value: Any) -> int | None:
    """MATH levels come as 3 or 'Level 3'; anything else (e.g. '?') is no level."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(?:level\s*)?(\d+)\s*", str(value), re.IGNORECASE)
    return int(m.group(1)) if m else None


class MathTask:
    """A math problem set; see the module docstring for names and options."""

    template = "think"

    def __init__(
        self,
        name: str,
        path: str | Path | None = None,
        question_field: str = "problem",
        answer_field: str = "answer",
        id_field: str = "id",
        hub: bool = False,
        timeout_s: float = 2.0,
    ) -> None:
        if name not in SHIPPED and name not in FILE_TASKS:
            raise KeyError(f"unknown math task {name!r}; expected one of {sorted(SHIPPED) + list(FILE_TASKS)}")
        if name in SHIPPED and (path is not None or hub):
            raise ValueError(f"{name} is shipped with studykit; to load another file use get('math', path=...)")
        if name == "math" and (path is None or hub):
            raise ValueError("task 'math' needs path= to a .jsonl, .json or .parquet file (and no hub=)")
        if name == "deepscaler" and (path is None) == (not hub):
            raise ValueError("task 'deepscaler' needs exactly one of path= (a local copy) or hub=True")
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: path= {path} is not a file")
        self.name, self.path, self.hub, self.timeout_s = name, (Path(path) if path else None), hub, timeout_s
        self.splits = splits_of(name)
        self.question_field, self.answer_field, self.id_field = question_field, answer_field, id_field
        self._problems: list[Problem] | None = None

    # -- loading

    def _source(self) -> tuple[str, list[dict[str, Any]]]:
        if self.name in SHIPPED:
            ref = resources.files("studykit").joinpath("data", "math", SHIPPED[self.name])
            with resources.as_file(ref) as file:
                return f"studykit/data/math/{SHIPPED[self.name]}", read_rows(file)
        if self.path is not None:
            return str(self.path), read_rows(self.path)
        return f"hub:{HUB_ID}", _hub_rows()

    def _field(self, row: dict[str, Any], field: str, where: str, i: int, option: str) -> str:
        value = row.get(field)
        if value is None or str(value).strip() == "":
            raise ValueError(
                f"{where}: row {i} has no {option}={field!r} (missing or empty); fields present: {sorted(row)}"
            )
        return str(value).strip() if option == "answer_field" else str(value)

    def _problem(self, row: dict[str, Any], i: int, where: str) -> Problem:
        question = self._field(row, self.question_field, where, i, "question_field")
        answer = self._field(row, self.answer_field, where, i, "answer_field")
        if self.id_field in row or self.id_field != "id":
            pid = self._field(row, self.id_field, where, i, "id_field")
        else:
            pid = str(i)
        meta: dict[str, Any] = {"task": self.name, "source_id": pid}
        if self.path is not None:
            meta["path"] = str(self.path)
        for key in _META_FIELDS:
            if row.get(key) is not None:
                meta[key] = _level(row[key]) if key == "level" else row[key]
        return Problem(id=f"{self.name}-{pid}", prompt=question, answer=answer, meta=meta)

    def problems(self) -> list[Problem]:
        """Every problem of the set, read once and kept."""
        if self._problems is None:
            where, rows = self._source()
            problems = [self._problem(row, i, where) for i, row in enumerate(rows)]
            seen: set[str] = set()
            for p in problems:
                if p.id in seen:
                    raise ValueError(f"{where}: duplicate id {p.meta['source_id']!r} in {self.id_field!r}")
                seen.add(p.id)
            if not problems:
                raise ValueError(f"{where}: no rows")
            self._problems = problems
        return list(self._problems)

    def load(self, split: str = "test") -> list[Problem]:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {list(self.splits)}")
        return self.problems()

    def generate(self, n: int, seed: int = 0, difficulty: int | None = None) -> list[Problem]:
        """`n` distinct problems drawn with `random.Random(seed)`; `difficulty` 1-5 keeps that MATH level
        when the rows have levels (ignored otherwise); None or 0 keeps every level."""
        pool = self.problems()
        if difficulty and any(p.meta.get("level") is not None for p in pool):
            pool = [p for p in pool if p.meta.get("level") == difficulty]
        if not isinstance(n, int) or n < 0 or n > len(pool):
            raise ValueError(f"{self.name}: n must be an int in [0, {len(pool)}] (difficulty={difficulty}), got {n!r}")
        return random.Random(seed).sample(pool, n)

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        return math_equal(answer_text, problem.answer, timeout_s=self.timeout_s)
