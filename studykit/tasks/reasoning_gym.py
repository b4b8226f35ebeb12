"""reasoning-gym (PyPI `reasoning-gym`) as a task provider: `rg:<name>` for the generators in `ENABLED`.

Generation runs here, seeded (`reasoning_gym.create_dataset(name, seed=..., size=..., **config)`; item i depends
only on the seed and i). Scoring runs in a separate worker process (`python -m studykit.tasks.reasoning_gym
--serve`), one call at a time, with a wall-clock limit per call (`timeout_s`, default 5 s): a scorer that does
not answer in time is killed and the answer is wrong. reasoning-gym gives partial credit (0.01 for a wrong
countdown expression, 0.3 + 0.7 * share for half-right knights and knaves); studykit binarises: correct means
full credit (score >= 1.0).

Each enabled scorer was read (reasoning-gym 0.1.25) before it was enabled, and gets a whitelist check first:

| task | difficulty 1 / 2 / 3 (reasoning-gym config) | scorer, and the check before it |
| --- | --- | --- |
| `zebra_puzzles` | people x characteristics 3x3 / 4x4 / 5x5 | lower-cased string equality; none needed |
| `countdown` | 3-4 numbers, target 10-100 / 4-5, 100-500 / 5-6, 100-999 | sympy `parse_expr` (eval-based) on the answer: only digits, spaces, `+-*/()` pass (no `**`), so nothing but arithmetic reaches it |
| `futoshiki` | 4x4 board, difficulty 0 / 5x5, 1 / 6x6, 2 | line-stripped string equality (else partial credit); none needed |
| `maze` | grid 5-6, distance 3-5 / grid 7-8, 5-10 / grid 9-12, 8-16 | base string equality of the step count; none needed |
| `propositional_logic` | 2-3 variables, 2-3 premises, depth 2 / 3-4, 3-4, 3 / 4-5, 4-5, 4 | its own recursive parser and a truth table over the variables found: only the task's upper-case variables, spaces, `()` and `∧∨¬→↔` pass, and at most 200 characters (bounds the table and the recursion); then studykit refuses a restated premise (below) |

`propositional_logic` pays any non-tautological consequence of the premises, so copying them paid: the conjunction
of the given premises scored 1.0 on 254/256, 256/256 and 256/256 train items at difficulty 1-3, one copied compound
premise too. An answer equivalent (truth table over the item's variables, reasoning-gym's own parser) to one
premise or to a conjunction of several scores 0 (`restates_premises`), and items whose intended conclusion
(`example_answer`, the reference) is itself such a restatement or not full credit are not generated (98, 70 and 36
of 256 train items at difficulty 1-3 were). Weakening a premise (`premise ∨ Q`) still pays: the generator's own
conclusions follow from a single premise on most items (206/256 at difficulty 1), so refusing that would refuse them.

Where studykit's own generator does the same job, studykit keeps its own and does not enable reasoning-gym's:
knights and knaves (`logic:knights_knaves`), puzzle24 (`logic:game24`), mini sudoku (`logic:sudoku4`) and word
sorting (`logic:word_sort`). Their verifiers are exact, accept every valid solution (a consistent role assignment,
any expression that makes 24, any valid grid), run in-process without eval, and are already in the paper grid
and its tests; reasoning-gym's puzzle24 scorer runs sympy `parse_expr` on the model's text.

Splits: `train` is 256 items from seed 0 and `test` 64 from seed 1, each keeping only questions of its own
pool (`studykit.tasks.logic.pool_of`, a salted hash of the question), so train and test never share a question.
Generation cost (measured on the 2-core CPU machine): zebra puzzles are slow, `load("test")` took 35 s at
difficulty 1; the other four take milliseconds per item. Scoring is one call at a time per process (one worker,
behind a lock); the worker's start (importing reasoning-gym, about 5 s) is paid on the first score.
"""

from __future__ import annotations

import atexit
import json
import re
import sys
import threading
from functools import lru_cache
from typing import Any

from studykit.scoring.verify import JsonLineWorker
from .base import Problem

__all__ = ["ENABLED", "ReasoningGymTask", "restates_premises", "score", "SIZES", "SPLITS"]

_D = {  # difficulty -> reasoning-gym config, per task (module docstring's table)
    "zebra_puzzles": {1: dict(num_people=3, num_characteristics=3), 2: dict(num_people=4, num_characteristics=4),
                      3: dict(num_people=5, num_characteristics=5)},
    "countdown": {1: dict(min_numbers=3, max_numbers=4, min_target=10, max_target=100),
                  2: dict(min_numbers=4, max_numbers=5, min_target=100, max_target=500),
                  3: dict(min_numbers=5, max_numbers=6, min_target=100, max_target=999)},
    "futoshiki": {1: dict(min_board_size=4, max_board_size=4, min_difficulty=0, max_difficulty=0),
                  2: dict(min_board_size=5, max_board_size=5, min_difficulty=1, max_difficulty=1),
                  3: dict(min_board_size=6, max_board_size=6, min_difficulty=2, max_difficulty=2)},
    "maze": {1: dict(min_dist=3, max_dist=5, min_grid_size=5, max_grid_size=6),
             2: dict(min_dist=5, max_dist=10, min_grid_size=7, max_grid_size=8),
             3: dict(min_dist=8, max_dist=16, min_grid_size=9, max_grid_size=12)},
    "propositional_logic": {
        1: dict(min_vars=2, max_vars=3, min_statements=2, max_statements=3, min_complexity=1, max_complexity=2),
        2: dict(min_vars=3, max_vars=4, min_statements=3, max_statements=4, min_complexity=1, max_complexity=3),
        3: dict(min_vars=4, max_vars=5, min_statements=4, max_statements=5, min_complexity=2, max_complexity=4)},
}
ENABLED = tuple(_D)
SPLITS = ("train", "test")
SIZES = {"train": 256, "test": 64}
_SEEDS = {"train": 0, "test": 1}
MAX_ANSWER_CHARS = 2_000
_COUNTDOWN = re.compile(r"[0-9+\-*/() ]{1,200}")
_PROPOSITIONAL = re.compile(r"[A-Z ()∧∨¬→↔]{1,200}")
TIMEOUT_S = 5.0
_WORKER_START_S = 120.0  # importing reasoning-gym takes seconds (5 s measured on a busy 2-core machine)


def _allowed(name: str, answer: str, entry: dict[str, Any]) -> bool:
    """The whitelist check made before the scorer sees the answer (module docstring)."""
    if len(answer) > MAX_ANSWER_CHARS:
        return False
    if name == "countdown":
        return bool(_COUNTDOWN.fullmatch(answer.strip())) and "**" not in answer and "//" not in answer
    if name == "propositional_logic":
        variables = set(entry.get("metadata", {}).get("variables", ()))
        return bool(_PROPOSITIONAL.fullmatch(answer.strip())) and set(re.findall(r"[A-Z]", answer)) <= variables
    return True


@lru_cache(maxsize=None)
def _dataset(name: str, seed: int, size: int, config_json: str):
    try:
        import reasoning_gym
    except ImportError:
        raise ImportError(f"task rg:{name} needs the reasoning-gym package (installed by `bash install.sh`; "
                          "or pip install reasoning-gym)") from None

    return reasoning_gym.create_dataset(name, seed=seed, size=size, **json.loads(config_json))


def _entry_for_meta(entry: dict[str, Any]) -> dict[str, Any]:
    """The item as plain JSON (what the worker's scorer reads: answer and metadata)."""
    return json.loads(json.dumps({"answer": entry.get("answer"), "metadata": entry.get("metadata", {})}, default=list))


_MAX_PREMISES = 8  # bounds the 2^k - 1 conjunctions compared (the configs above give at most 5 premises)
_MAX_VARIABLES = 8  # ... and the 2^n truth-table rows (at most 5 variables)


def _truth_table(expr, names: list[str]) -> int:
    """Bit r is the value of reasoning-gym's `Expression` in row r (variable j is bit j of r)."""
    bits = 0
    for r in range(1 << len(names)):
        bits |= int(bool(expr.evaluate({v: bool((r >> j) & 1) for j, v in enumerate(names)}))) << r
    return bits


def restates_premises(answer: str, metadata: dict[str, Any]) -> bool:
    """Whether `answer` is equivalent to one premise or to a conjunction of premises of the item (module docstring),
    read by reasoning-gym's own parser, as its scorer reads it. True (refused) when the item breaks the bounds."""
    from reasoning_gym.logic.propositional_logic import Expression

    names, premises = list(metadata.get("variables", ())), list(metadata.get("premises", ()))
    if len(names) > _MAX_VARIABLES or len(premises) > _MAX_PREMISES:
        return True
    try:
        target = _truth_table(Expression.from_string(answer), names)
        tables = [_truth_table(Expression.from_string(p), names) for p in premises]
    except (ValueError, KeyError, AttributeError, RecursionError):  # the scorer gives such text 0 too
        return False
    full = (1 << (1 << len(names))) - 1
    for chosen in range(1, 1 << len(tables)):  # every non-empty subset of the premises
        conj = full
        for k, table in enumerate(tables):
            if chosen >> k & 1:
                conj &= table
        if conj == target:
            return True
    return False


def _score_here(req: dict[str, Any]) -> float:
    """reasoning-gym's own score, in the worker process; a restated premise scores 0 (module docstring)."""
    ds = _dataset(req["name"], req["seed"], req["size"], req["config"])
    value = float(ds.score_answer(req["answer"], req["entry"]))
    if value >= 1.0 and req["name"] == "propositional_logic" and restates_premises(req["answer"],
                                                                                   req["entry"]["metadata"]):
        return 0.0
    return value


def _answerable(name: str, ds, entry: dict[str, Any]) -> bool:
    """propositional_logic: the intended conclusion is full credit and no restated premise (module docstring)."""
    if name != "propositional_logic":
        return True
    example = entry.get("metadata", {}).get("example_answer", "")
    return ds.score_answer(example, entry) >= 1.0 and not restates_premises(example, entry["metadata"])


class _Worker(JsonLineWorker):
    """The scorer process; `ask` gives the score, or None when it did not answer in time (it is then killed)."""

    module = "studykit.tasks.reasoning_gym"
    start_s = _WORKER_START_S

    def __init__(self) -> None:
        super().__init__(PYTHONWARNINGS="ignore")

    def ask(self, req: dict[str, Any], timeout_s: float) -> float | None:
        reply = self.request(req, timeout_s)
        return None if reply is None else float(reply.get("score", 0.0))


_LOCK = threading.Lock()
_STATE: dict[str, _Worker | None] = {"worker": None}


def shutdown_worker() -> None:
    """Stop the scorer process (it also stops when this process exits)."""
    with _LOCK:
        if _STATE["worker"] is not None:
            _STATE["worker"].kill()
            _STATE["worker"] = None


atexit.register(shutdown_worker)


def score(meta: dict[str, Any], answer: str, timeout_s: float = TIMEOUT_S) -> float:
    """reasoning-gym's score of `answer` for the item in `meta`, 0.0 when the check refuses it or time runs out."""
    if not isinstance(answer, str) or not answer.strip() or not _allowed(meta["rg_name"], answer, meta["rg_entry"]):
        return 0.0
    req = {"name": meta["rg_name"], "seed": meta["seed"], "size": meta["size"], "config": meta["config"],
           "entry": meta["rg_entry"], "answer": answer}
    with _LOCK:
        worker = _STATE["worker"] or _Worker()
        _STATE["worker"] = worker
        result = worker.ask(req, timeout_s)
        if result is None:
            worker.kill()
            _STATE["worker"] = None
            return 0.0
    return result


class ReasoningGymTask:
    """The `Task` for one reasoning-gym generator (module docstring)."""

    splits = SPLITS
    sizes = SIZES
    template = "think"

    def __init__(self, name: str, difficulty: int = 1, timeout_s: float = TIMEOUT_S) -> None:
        if name not in _D:
            raise ValueError(f"reasoning-gym task must be one of {sorted(_D)} (studykit enables only checked scorers), "
                             f"got {name!r}")
        if difficulty not in (1, 2, 3) or isinstance(difficulty, bool):
            raise ValueError(f"difficulty must be one of (1, 2, 3), got {difficulty!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self.rg_name, self.difficulty, self.timeout_s = name, difficulty, float(timeout_s)
        self.name = f"rg:{name}"

    def __repr__(self) -> str:
        return f"ReasoningGymTask({self.rg_name!r}, difficulty={self.difficulty})"

    def _problem(self, entry: dict[str, Any], seed: int, size: int, config: str, i: int, split: str | None):
        answer = entry.get("answer")
        if answer is None:  # open-ended (propositional_logic): one valid conclusion, for reference only
            answer = entry.get("metadata", {}).get("example_answer", "")
        meta = {"task": self.name, "rg_name": self.rg_name, "difficulty": self.difficulty, "seed": seed,
                "size": size, "config": config, "index": i, "rg_entry": _entry_for_meta(entry)}
        if split is not None:
            meta["split"] = split
        return Problem(f"{self.name}-{seed}-{i}", entry["question"], str(answer), meta)

    def generate(self, n: int, seed: int = 0, difficulty: int | None = None, split: str | None = None):
        """`n` items of this seed (and `difficulty`, default the task's); with `split`, only that split's pool."""
        from .logic import pool_of

        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        level = self.difficulty if difficulty is None else difficulty
        if level not in _D[self.rg_name]:
            raise ValueError(f"difficulty must be one of (1, 2, 3), got {difficulty!r}")
        config = json.dumps(_D[self.rg_name][level], sort_keys=True)
        size = 20 * max(n, 1)  # room to skip the other pool's questions; items depend on seed + index only
        ds = _dataset(self.rg_name, seed, size, config)
        out, seen = [], set()
        for i in range(size):
            if len(out) == n:
                break
            entry = ds[i]
            if entry["question"] in seen or (split is not None and pool_of(entry["question"]) != split) \
                    or not _answerable(self.rg_name, ds, entry):
                continue
            seen.add(entry["question"])
            out.append(self._problem(entry, seed, size, config, i, split))
        if len(out) < n:
            raise RuntimeError(f"{self.name}: only {len(out)} distinct {split or ''} items in {size} draws")
        return out

    def load(self, split: str = "test") -> list[Problem]:
        if split not in SPLITS:
            raise ValueError(f"{self.name}: unknown split {split!r}; expected one of {list(SPLITS)}")
        return self.generate(SIZES[split], seed=_SEEDS[split], split=split)

    def verify(self, problem: Problem, answer_text: str | None) -> bool:
        """Full credit from reasoning-gym's scorer in the bounded worker (partial credit counts as wrong)."""
        if not isinstance(answer_text, str):
            return False
        return score(problem.meta, answer_text, self.timeout_s) >= 1.0


def _serve() -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies may reach the pipe
    import reasoning_gym  # noqa: F401 - pay the import before saying ready

    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            value = _score_here(req)
        except BaseException:  # noqa: BLE001 - a scorer failing on hostile text is a wrong answer
            value = 0.0
        out.write(json.dumps({"score": value}).encode() + b"\n")
        out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
