"""`studykit score`: score a JSONL file of sampled completions against a task.

Each line is one JSON object. Accepted shapes (the problem id must name a problem of the task's
`load("test")` set, or of `load("train")` when the task has one):

1. `{"problem_id": "...", "completion": "..."}`: one completion; `id` may replace `problem_id` and
   `text` may replace `completion`.
2. `{"problem_id": "...", "completions": ["...", ...]}`: several completions of one problem.
3. OpenAI-style responses as vLLM's server writes them, with the problem id added as `problem_id`
   (or `id`): `{"problem_id": ..., "choices": [{"text": ...}, ...]}` (completions endpoint) or
   `{"problem_id": ..., "choices": [{"message": {"content": ...}}, ...]}` (chat endpoint); every
   choice is one completion.
4. `vllm run-batch` output lines: `{"custom_id": ..., "response": {"body": {"choices": [...]}}}`,
   where `custom_id` is the problem id (a line whose request failed is an error, not skipped, so
   failed samples cannot silently raise the scores).

Lines are grouped by problem (in order of first appearance). Per problem: n, correct count, format
rate and the majority answer. Overall: avg@n (mean of c/n), unbiased pass@k for every requested
k <= the smallest n (larger ks are listed as skipped), and maj@n. Correctness is the task's
verifier on `verify.extract_answer`; maj@n uses the `majority_vote` reward's rule (see
`studykit.scoring.rewards`: math answers clustered by equivalence, ties to the answer seen first, no
format gate). Blank lines are ignored; a line that is not UTF-8 (a binary file) is an error naming the file, the
line and the byte. Not in the paper: a convenience for checking samplers.

Verifier time: problems are scored in parallel threads, one per verifier worker process
(`studykit.scoring.verify.pool_size()`), and the whole file shares one wall-clock budget (`budget_s`, default
`BUDGET_S`): each math check's limit is cut to what is left and, once it is spent, no further check is made.
Nothing undecided is scored silently: the report counts the checks that timed out (`timed_out`) and those never
made (`skipped`), per problem (`undecided`) and overall, the table and stderr say so, and `studykit score` exits 3
when the budget ran out (the scores are then incomplete lower bounds).

`--reward NAME` (a shipped condition or a reward plug-in, with `--reward-option KEY=VALUE`) also pays every problem's
completions as a training run would and reports the mean reward per problem and overall (studykit.cli.score_reward:
validated as a params file's `reward` section before any completion is read, run in the plug-in's bounded wrapper).
A bad plug-in, or one that raises while scoring, is an error naming it (exit 2) and no report is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studykit.cli import score_reward
from studykit.scoring import metrics, rewards, verify
from studykit import tasks as task_registry
from studykit.tasks import Problem

__all__ = ["ProblemScore", "ScoreReport", "EXAMPLES", "read_completions", "score_file", "add_score_parser", "run", "main"]

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "examples"
EXAMPLES = {"toy": ("toy_completions.jsonl", "toy"), "math500": ("math500_completions.jsonl", "math500")}
BUDGET_S = 300.0
"""Default verifier time budget of one file (seconds of wall time over all its math checks)."""
OVER_BUDGET_EXIT = 3


@dataclass
class ProblemScore:
    id: str
    n: int
    correct: int
    format_rate: float
    majority_answer: str | None
    majority_correct: bool
    undecided: int = 0  # answer checks that timed out or were never made (budget spent): counted as wrong
    reward_mean: float | None = None  # --reward: the mean training reward of the problem's completions


@dataclass
class ScoreReport:
    path: str
    task: str
    problems: list[ProblemScore]
    avg_at_n: float
    pass_at_k: dict[int, float]
    maj_at_n: float
    skipped_ks: list[int] = field(default_factory=list)
    budget_s: float = BUDGET_S
    timed_out: int = 0  # checks that hit their time limit
    skipped: int = 0  # checks never made: the budget was spent
    reward: dict[str, Any] | None = None  # --reward: name, identity, options, format_gate, seed, mean, timeouts

    @property
    def over_budget(self) -> bool:
        return self.skipped > 0

    def warning(self) -> str:
        """What the verifier could not decide, in one line ("" when everything was decided)."""
        if not self.timed_out and not self.skipped:
            return ""
        where = [p.id for p in self.problems if p.undecided]
        head = (f"verifier budget of {self.budget_s:g} s spent: {self.skipped} answer checks not made"
                if self.over_budget else "")
        tail = f"{self.timed_out} answer checks timed out" if self.timed_out else ""
        return (f"{'; '.join(x for x in (head, tail) if x)}; counted as wrong, so the scores are lower bounds "
                f"(problems: {', '.join(where[:10])}{' ...' if len(where) > 10 else ''})")

    @property
    def n_min(self) -> int:
        return min(p.n for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pass_at_k"] = {str(k): v for k, v in self.pass_at_k.items()}
        out["n_min"] = self.n_min
        out["over_budget"] = self.over_budget
        return out

    def format_table(self) -> str:
        width = max(10, *(len(p.id) for p in self.problems))
        paid = self.reward is not None
        lines = [f"{'problem':<{width}}  {'n':>4}  {'correct':>7}  {'format':>6}  {'reward' if paid else ''}"
                 f"{'  ' if paid else ''}majority"]
        for p in self.problems:
            mark = "ok" if p.majority_correct else "x"
            reward = f"{p.reward_mean:>6.3f}  " if paid else ""
            lines.append(f"{p.id:<{width}}  {p.n:>4}  {p.correct:>7}  {p.format_rate:>6.2f}  {reward}"
                         f"{_short(p.majority_answer)} ({mark})")
        lines.append("")
        lines.append(f"{self.task}: {len(self.problems)} problems, n = {_n_range(self.problems)} samples each")
        lines.append(f"avg@n   {self.avg_at_n:.4f}")
        for k, v in self.pass_at_k.items():
            lines.append(f"pass@{k:<3} {v:.4f}")
        lines.append(f"maj@n   {self.maj_at_n:.4f}")
        if paid:
            r = self.reward
            lines.append(f"reward  {r['mean']:.4f}  ({r['identity'] or r['name']}, "
                         f"options {r['options']}, format_gate {r['format_gate']}, seed {r['seed']})")
            if r["timeouts"]:
                lines.append(f"reward: {len(r['timeouts'])} groups ran out of the plug-in's time limit and were paid "
                             f"0: {', '.join(r['timeouts'][:10])}")
        if self.skipped_ks:
            lines.append(f"skipped k > min n ({self.n_min}): {', '.join(map(str, self.skipped_ks))}")
        if self.warning():
            lines.append(f"WARNING: {self.warning()}")
        return "\n".join(lines)


def _short(text: str | None, limit: int = 30) -> str:
    if text is None:
        return "-"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _n_range(problems: Sequence[ProblemScore]) -> str:
    ns = sorted({p.n for p in problems})
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}..{ns[-1]}"


def _choice_text(choice: Any, where: str) -> str:
    if isinstance(choice, dict):
        if isinstance(choice.get("text"), str):
            return choice["text"]
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            return message["content"]
    raise ValueError(f"{where}: each choice needs 'text' or 'message.content' (a string), got {choice!r:.80}")


def _parse_line(obj: Any, where: str) -> tuple[str, list[str]]:
    """(problem id, completions) from one decoded line; see the module docstring for the shapes."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    pid = next((obj[k] for k in ("problem_id", "custom_id", "id") if obj.get(k) is not None), None)
    if not isinstance(pid, (str, int)) or isinstance(pid, bool):
        raise ValueError(f"{where}: missing problem id: expected a string field 'problem_id' (or 'id', 'custom_id')")
    body = obj
    if "response" in obj and "choices" not in obj:
        response = obj.get("response") or {}
        body = response.get("body") if isinstance(response, dict) else None
        if not isinstance(body, dict):
            raise ValueError(f"{where}: batch request failed or has no response.body (error: {obj.get('error')!r:.120})")
    for key in ("completion", "text"):
        if isinstance(body.get(key), str):
            return str(pid), [body[key]]
    if isinstance(body.get("completions"), list) and all(isinstance(c, str) for c in body["completions"]):
        return str(pid), list(body["completions"])
    if isinstance(body.get("choices"), list) and body["choices"]:
        return str(pid), [_choice_text(c, where) for c in body["choices"]]
    raise ValueError(
        f"{where}: no completion found: expected 'completion' or 'text' (string), 'completions' (list of strings), "
        "or 'choices' [{text} | {message: {content}}]"
    )


def read_completions(path: str | Path) -> list[tuple[int, str, list[str]]]:
    """(line number, problem id, completions) for each non-blank line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"completions file not found: {path}")
    rows = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            where = f"{path}:{lineno}"
            line = _decode(raw, where, first=lineno == 1)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
            rows.append((lineno, *_parse_line(obj, where)))
    if not rows:
        raise ValueError(f"{path}: no completions (the file is empty)")
    return rows


def _decode(raw: bytes, where: str, first: bool) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                         "expected a JSONL file of completions, is this a binary file?") from None
    return text.removeprefix("\ufeff") if first else text


def _lookup(task: Any, rows: Iterable[tuple[int, str, list[str]]], path: Path) -> dict[str, Problem]:
    """Problems by id for every id in `rows`; the train split is loaded only when needed."""
    by_id = {p.id: p for p in task.load("test")}
    missing = [(ln, pid) for ln, pid, _ in rows if pid not in by_id]
    if missing:
        try:
            by_id.update({p.id: p for p in task.load("train") if p.id not in by_id})
        except Exception:  # the task has no train split (or cannot build it here)
            pass
    for lineno, pid in missing:
        if pid not in by_id:
            raise ValueError(f"{path}:{lineno}: unknown problem id {pid!r} for task {task.name!r}")
    return by_id


def _resolve_ks(ks: Iterable[int] | None, n_min: int) -> tuple[list[int], list[int]]:
    if ks is None:
        ks = [2**i for i in range(n_min.bit_length()) if 2**i <= n_min]
    ks = sorted({int(k) for k in ks})
    if any(k < 1 for k in ks):
        raise ValueError(f"ks must all be >= 1, got {ks}")
    return [k for k in ks if k <= n_min], [k for k in ks if k > n_min]


def score_file(
    path: str | Path, task: str, ks: Iterable[int] | None = None, task_options: dict[str, Any] | None = None,
    budget_s: float = BUDGET_S, workers: int | None = None, reward: str | None = None,
    reward_options: dict[str, Any] | None = None, reward_format_gate: bool = True, reward_p: float | None = None,
    reward_seed: int = 0,
) -> ScoreReport:
    """Score a completions JSONL against task `task`; `ks` defaults to powers of two up to the smallest n; all
    verifier checks of the file share `budget_s` seconds, `workers` threads (default: the verifier pool size).
    `reward` (with its options, gate, `p`, seed): also pay each problem's completions (studykit.cli.score_reward)."""
    path = Path(path)
    task_obj = task_registry.get(task, **(task_options or {}))
    spec = None if reward is None else score_reward.build(reward, reward_options or {}, reward_format_gate, reward_p,
                                                          reward_seed, task_obj)  # a bad plug-in fails first
    rows = read_completions(path)
    by_id = _lookup(task_obj, rows, path)
    groups: dict[str, list[str]] = {}
    for _, pid, completions in rows:
        groups.setdefault(pid, []).extend(completions)
    vote = rewards.get("majority_vote", format_gate=False, verify=task_obj.verify)
    budget = verify.Budget(budget_s)

    def one(item: tuple[str, list[str]]) -> ProblemScore:
        pid, completions = item
        with budget.applied() as tally:
            res = vote(completions, by_id[pid])
        return ProblemScore(pid, len(completions), int(res.correct.sum()), float(res.format_ok.mean()),
                            res.extra["majority_answer"], bool(res.extra["majority_correct"]), tally.undecided)

    with ThreadPoolExecutor(max_workers=workers or verify.pool_size()) as pool:
        scores = list(pool.map(one, groups.items()))
    if spec is not None:
        paid = score_reward.score_groups(spec, groups, by_id, budget)  # main thread: the plug-in's deadline
        for s in scores:
            s.reward_mean = paid.means[s.id]
    report = _summarise(str(path), task, scores, ks)
    report.budget_s, report.timed_out, report.skipped = budget.seconds, budget.timed_out, budget.skipped
    if spec is not None:
        report.reward = {"name": spec.name, "identity": spec.identity, "options": spec.options,
                         "format_gate": spec.format_gate, "seed": spec.seed, "timeouts": paid.timeouts,
                         "mean": float(np.mean([paid.means[s.id] for s in scores]))}
    return report


def _summarise(path: str, task: str, scores: list[ProblemScore], ks: Iterable[int] | None) -> ScoreReport:
    n_min = min(s.n for s in scores)
    good_ks, skipped = _resolve_ks(ks, n_min)
    pass_k = {k: float(np.mean([metrics.pass_at_k(s.n, s.correct, k) for s in scores])) for k in good_ks}
    avg = float(np.mean([s.correct / s.n for s in scores]))
    maj = float(np.mean([s.majority_correct for s in scores]))
    return ScoreReport(path, task, scores, avg, pass_k, maj, skipped)


def add_score_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `score` on an argparse subparsers object; the handler is `args.func(args)` -> exit code."""
    parser = subparsers.add_parser("score", help="score a JSONL of completions: pass@k, avg@n, maj@n")
    _configure_parser(parser)
    return parser


def _configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="JSONL of completions (see `studykit.cli.score` for accepted shapes)")
    parser.add_argument("--task", help="task name (studykit.tasks.names()); defaults to the example's task")
    parser.add_argument("--k", type=int, nargs="+", dest="ks", help="pass@k values (default: powers of two <= n)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--example", choices=sorted(EXAMPLES), help="score a shipped example file instead of FILE")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S,
                        help=f"verifier time budget for the whole file, seconds (default {BUDGET_S:g}); when it "
                             f"runs out the report says so and the exit code is {OVER_BUDGET_EXIT}")
    parser.add_argument("--reward", help="also pay the completions with this reward: a shipped condition or a reward "
                        "plug-in (package.module:function, or an installed studykit.rewards entry point)")
    parser.add_argument("--reward-option", action="append", metavar="KEY=VALUE", dest="reward_options",
                        help="an option of the --reward plug-in (repeatable; VALUE read as YAML), checked as "
                             "reward.options is")
    parser.add_argument("--reward-format-gate", action=argparse.BooleanOptionalAction,
                        help="pay only well-formatted completions (default: on, as reward.format_gate)")
    parser.add_argument("--reward-p", type=float, help="Bernoulli p of --reward random (default 0.5, as reward.p)")
    parser.add_argument("--reward-seed", type=int,
                        help="seed of the reward's generator (default 0, as train.seed)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler for the parsed `score` arguments: prints the report, returns the exit code."""
    if args.example and args.file:
        return _fail("give FILE or --example, not both")
    if args.example:
        name, default_task = EXAMPLES[args.example]
        path, task = EXAMPLES_DIR / name, args.task or default_task
    elif args.file:
        path, task = Path(args.file), args.task
    else:
        return _fail("give a completions FILE or --example {" + ",".join(sorted(EXAMPLES)) + "}")
    if not task:
        return _fail("--task is required with FILE; known tasks: " + _task_names())
    given = [flag for flag, value in (("--reward-option", args.reward_options), ("--reward-p", args.reward_p),
                                      ("--reward-format-gate", args.reward_format_gate),
                                      ("--reward-seed", args.reward_seed)) if value is not None]
    if args.reward is None and given:
        return _fail(f"{', '.join(given)} given without --reward; name the reward they belong to")
    try:
        options = score_reward.parse_options(args.reward_options)
        report = score_file(path, task, ks=args.ks, budget_s=args.budget_s, reward=args.reward,
                            reward_options=options, reward_format_gate=args.reward_format_gate is not False,
                            reward_p=args.reward_p, reward_seed=args.reward_seed or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        return _fail(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_table())
    if report.warning():
        print(f"studykit score: warning: {report.warning()}", file=sys.stderr)
    return OVER_BUDGET_EXIT if report.over_budget else 0


def _task_names() -> str:
    try:
        return ", ".join(task_registry.names())
    except Exception:  # a task family that fails to import must not hide the real error
        return "see studykit.tasks.names()"


def _fail(message: str) -> int:
    print(f"studykit score: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run `studykit score` standalone (also: `python -m studykit.cli.score`)."""
    parser = argparse.ArgumentParser(prog="studykit score", description=__doc__.split("\n", 1)[0])
    _configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
