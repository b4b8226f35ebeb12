"""The contamination probe: has a model seen a benchmark's problems (and answers) in pretraining?

`contamination(policy, problems, fractions=(0.4, 0.6, 0.8), task=...)`: for each fraction f, the model gets the
first f of each problem statement (by tokens of the bare `Problem.prompt`, no template), continues it greedily for
as many tokens as the true remainder has, and the continuation is scored against the remainder by exact match
(whitespace-normalised text) and ROUGE-L F1 (the `rouge-score` package). Answer recall: the task's
`recall_prompt(problem, template, tokenizer)` hook gives the prompt cut just before the answer, with no reasoning
(for the toy: `Q d1 .. d5 = <think> </think> <answer>`); the greedy continuation is scored with the task's
verifier: a diagnostic only, since a strong clean model answers easy problems directly. Partial-prompt answer
accuracy (Wu et al.'s label): for each fraction in `answer_fractions` the greedy continuation of the same prefix
runs on for `answer_max_new_tokens` tokens past the true remainder's length, and the answer it gives (`<answer>` or
`\\boxed{}`, `verify.extract_answer`) is scored with the task's verifier: a model that never saw the problem
cannot know the part it was not shown (Qwen2.5-Math-7B: 53.6% on MATH-500 at 60%, Llama-3.1-8B: 2.4%). The EM
continuation is the first remainder-length tokens of that same greedy run, so its numbers are unchanged. Each mean
has a percentile bootstrap interval over problems (`studykit.scoring.metrics.bootstrap_ci`).

This is the test of the paper (arXiv 2508.21188, after Wu et al. 2025, arXiv 2507.10532: partial-prompt completion
scored by EM and ROUGE-L). ROUGE tokens: rouge-score's default tokenizer lower-cases and drops every
non-alphanumeric character, which would throw away `=`, the toy's tags and most of LaTeX; studykit's `RougeTokens`
keeps case, keeps runs of letters/digits as one token and makes every other non-space character its own token
(`Q 3 5 =` -> Q, 3, 5, =; `\\frac{1}{2}` -> \\, frac, {, 1, }, {, 2, }). Thresholds of the clean/contaminated label
are studykit's own (`studykit.config.schema.ContaminationConfig`): the paper states none.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studykit.scoring import metrics
from studykit.tasks import Problem
from studykit.tasks.templates import render

DEFAULT_FRACTIONS = (0.4, 0.6, 0.8)
MAX_REMAINDER_TOKENS = 256  # bound on the generated continuation (a MATH-500 statement is ~60 tokens on average)
RECALL_MAX_NEW_TOKENS = 32  # an answer, not a solution
DEFAULT_ANSWER_FRACTIONS = (0.6, 0.8)  # Wu et al. 2025's partial-prompt answer accuracy
ANSWER_MAX_NEW_TOKENS = 512  # past the true remainder: room for a solution and its answer
_TOKEN_RE = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


class RougeTokens:
    """rouge-score tokenizer: letter/digit runs as tokens, every other non-space character a token, case kept."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN_RE.findall(text or "")


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of `prediction` against `reference` (rouge-score, `RougeTokens`); 0 when either has no token."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=RougeTokens())
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


def exact_match(prediction: str, reference: str) -> bool:
    """Equal after collapsing whitespace (and stripping both ends)."""
    return " ".join(prediction.split()) == " ".join(reference.split())


def split_ids(ids: list[int], fraction: float) -> tuple[list[int], list[int]]:
    """(prefix, remainder) of a token list: floor(fraction x n) tokens, at least 1, leaving at least 1."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: expected a number in (0, 1), got {fraction!r}")
    if len(ids) < 2:
        raise ValueError(f"a statement of {len(ids)} token(s) cannot be cut in two")
    cut = min(max(1, math.floor(fraction * len(ids))), len(ids) - 1)
    return ids[:cut], ids[cut:]


def statement_ids(tokenizer: Any, text: str) -> tuple[list[int], list[int]]:
    """(special head, statement ids): the tokens the tokenizer adds in front (a bos) and the bare text's ids."""
    bare = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    head = full[: len(full) - len(bare)] if len(full) > len(bare) and full[len(full) - len(bare):] == bare else []
    return head, bare


def greedy_continue(policy: Any, rows: list[list[int]], max_new_tokens: list[int], batch_size: int = 32) -> list[list[int]]:
    """Greedy continuations (token ids, stopped at eos, at most `max_new_tokens[i]`) of each id row, batched and
    left-padded through plain `model.generate`."""
    import torch
    from transformers import GenerationConfig

    model, tok = policy.model, policy.tokenizer
    eos = tok.eos_token_id if tok.eos_token_id is not None else getattr(model.generation_config, "eos_token_id", None)
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    pad = tok.pad_token_id if tok.pad_token_id is not None else (min(eos_ids) if eos_ids else 0)
    device = next(model.parameters()).device
    autocast = getattr(policy, "autocast", contextlib.nullcontext)
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths share a batch: less padding
    try:
        with torch.inference_mode(), autocast():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                width = max(len(rows[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, i in enumerate(chunk):
                    ids[j, width - len(rows[i]):] = torch.tensor(rows[i])
                    mask[j, width - len(rows[i]):] = 1
                new = max(max_new_tokens[i] for i in chunk)
                cfg = GenerationConfig(do_sample=False, max_new_tokens=new, num_beams=1, repetition_penalty=1.0,
                                       eos_token_id=sorted(eos_ids) or None, pad_token_id=pad)
                gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=cfg)
                for j, i in enumerate(chunk):
                    cont = gen[j, width:].tolist()[: max_new_tokens[i]]
                    stop = next((t for t, x in enumerate(cont) if x in eos_ids), None)
                    out[i] = cont if stop is None else cont[:stop]
    finally:
        model.train(was_training)
    return out


@dataclass
class ContaminationResult:
    """Per-fraction exact match and ROUGE-L, answer recall, each as (mean, lo, hi), and the per-problem values."""

    n: int
    em: dict[float, tuple[float, float, float]] = field(default_factory=dict)
    rouge_l: dict[float, tuple[float, float, float]] = field(default_factory=dict)
    answer_recall: tuple[float, float, float] | None = None
    answer_acc: dict[float, tuple[float, float, float]] = field(default_factory=dict)
    """Partial-prompt answer accuracy per prefix fraction (the label's criterion)."""
    per_problem: dict[str, list[float]] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)

    def metrics(self, label: str) -> dict[str, float]:
        """MLflow metrics `contamination/<set>/em_<f>`, `rougeL_<f>`, `answer_acc_prefix<pct>` (partial-prompt
        answer accuracy, e.g. `answer_acc_prefix60`), `answer_recall` (+ `_lo`, `_hi` each)."""
        out: dict[str, float] = {}
        stats = [(f"em_{f:g}", v) for f, v in self.em.items()] + [(f"rougeL_{f:g}", v) for f, v in self.rouge_l.items()]
        stats += [(answer_acc_name(f), v) for f, v in self.answer_acc.items()]
        if self.answer_recall is not None:
            stats.append(("answer_recall", self.answer_recall))
        for name, (mean, lo, hi) in stats:
            key = f"contamination/{label}/{name}"
            out.update({key: mean, f"{key}_lo": lo, f"{key}_hi": hi})
        return out

    def record(self) -> dict[str, Any]:
        return {"n": self.n, "em": {f"{f:g}": list(v) for f, v in self.em.items()},
                "rougeL": {f"{f:g}": list(v) for f, v in self.rouge_l.items()},
                "answer_recall": None if self.answer_recall is None else list(self.answer_recall),
                "answer_acc": {f"{f:g}": list(v) for f, v in self.answer_acc.items()}, "examples": self.examples}


def answer_acc_name(fraction: float) -> str:
    """`answer_acc_prefix60` for 0.6: the metric name of partial-prompt answer accuracy at a prefix fraction."""
    return f"answer_acc_prefix{round(fraction * 100):g}"


def prefix_answer_correct(task: Any, problem: Problem, continuation: str) -> bool:
    """Whether the answer in the continuation of a cut statement (`<answer>` block, else the last `\\boxed{}`) is
    right for the whole problem; bounded (`extract_answer` caps the text), never raises."""
    from studykit.scoring.verify import extract_answer

    try:
        answer = extract_answer(continuation)
        return answer is not None and bool(task.verify(problem, answer))
    except Exception:  # a verifier that raises on hostile text scores it wrong, as evaluation does
        return False


def _budget(remainder: int, extra: int, room: int | None) -> int:
    """Tokens to generate: the remainder's length plus `extra`, within the model's positions (never below the
    remainder's length, the exact-match continuation's own budget)."""
    return remainder + extra if room is None else min(remainder + extra, max(room, remainder))


def _position_room(policy: Any, row: list[int]) -> int | None:
    """Tokens the model can still take after `row` (its max_position_embeddings), None when unbounded/unknown."""
    limit = getattr(getattr(policy.model, "config", None), "max_position_embeddings", None)
    return max(int(limit) - len(row), 1) if isinstance(limit, int) else None


def _interval(values: list[float], n_boot: int, seed: int) -> tuple[float, float, float]:
    lo, hi = metrics.bootstrap_ci(values, n_boot=n_boot, seed=seed)
    return float(np.mean(values)), lo, hi


def recall_prompt(task: Any, problem: Problem, template: str, tokenizer: Any) -> str:
    """The task's `recall_prompt` hook, else the templated prompt with an empty think block and `<answer>` open."""
    hook = getattr(task, "recall_prompt", None)
    if hook is not None:
        return hook(problem, template, tokenizer)
    return f"{render(problem, template, tokenizer)} <think> </think> <answer>"


def recall_correct(task: Any, problem: Problem, continuation: str) -> bool:
    """Score a recall continuation (the text after `<answer>`) with the task's verifier; bounded, never raises."""
    from studykit.scoring.verify import extract_answer

    text = continuation if "</answer>" in continuation else continuation.split("\n", 1)[0] + "</answer>"
    try:
        return bool(task.verify(problem, extract_answer("<answer>" + text)))
    except Exception:  # a verifier that raises on hostile text scores it wrong, as evaluation does
        return False


def contamination(policy: Any, problems: list[Problem], fractions: tuple[float, ...] = DEFAULT_FRACTIONS, *,
                  task: Any = None, template: str = "raw", recall: bool = True, batch_size: int = 32,
                  max_remainder_tokens: int = MAX_REMAINDER_TOKENS,
                  recall_max_new_tokens: int = RECALL_MAX_NEW_TOKENS, n_boot: int = 1000, seed: int = 0,
                  n_examples: int = 3, answer_fractions: tuple[float, ...] = DEFAULT_ANSWER_FRACTIONS,
                  answer_max_new_tokens: int = ANSWER_MAX_NEW_TOKENS) -> ContaminationResult:
    """Run the probe on `problems` (see the module docstring). `task` (with `verify`, optionally `recall_prompt`)
    is needed for answer recall and partial-prompt answer accuracy (`answer_fractions`; () = none); `template` is
    the task's prompt template, used only by the recall prompt."""
    if not problems:
        raise ValueError("contamination: no problems given")
    if (recall or answer_fractions) and task is None:
        raise ValueError("contamination: answer recall and partial-prompt answer accuracy need the task (its verify "
                         "and recall_prompt); pass task=")
    tok = policy.tokenizer
    result = ContaminationResult(len(problems))
    encoded = [statement_ids(tok, p.prompt) for p in problems]
    for f in sorted(set(fractions) | set(answer_fractions)):
        rows, targets = [], []
        for head, ids in encoded:
            prefix, rest = split_ids(ids, f)
            rows.append(head + prefix)
            targets.append(rest[:max_remainder_tokens])
        extra = answer_max_new_tokens if f in answer_fractions else 0
        budgets = [_budget(len(t), extra, _position_room(policy, r)) for t, r in zip(targets, rows)]
        longs = greedy_continue(policy, rows, budgets, batch_size)
        if f in answer_fractions:
            hits = [float(prefix_answer_correct(task, p, tok.decode(c, skip_special_tokens=True)))
                    for p, c in zip(problems, longs)]
            result.answer_acc[f] = _interval(hits, n_boot, seed)
            result.per_problem[answer_acc_name(f)] = hits
        if f not in fractions:
            continue
        conts = [c[: len(t)] for c, t in zip(longs, targets)]  # greedy: the same tokens a remainder-long run gives
        em, rl = [], []
        for i, (cont, target) in enumerate(zip(conts, targets)):
            pred, ref = tok.decode(cont, skip_special_tokens=True), tok.decode(target, skip_special_tokens=True)
            em.append(float(exact_match(pred, ref)))
            rl.append(rouge_l(pred, ref))
            if i < n_examples and f == fractions[len(fractions) // 2]:
                result.examples.append({"prefix": tok.decode(rows[i], skip_special_tokens=True), "truth": ref,
                                        "completion": pred})
        result.em[f], result.rouge_l[f] = _interval(em, n_boot, seed), _interval(rl, n_boot, seed)
        result.per_problem[f"em_{f:g}"], result.per_problem[f"rougeL_{f:g}"] = em, rl
    if recall:
        from studykit.policy.sampling.base import prompt_token_ids

        rows = [prompt_token_ids(tok, recall_prompt(task, p, template, tok)) for p in problems]
        conts = greedy_continue(policy, rows, [recall_max_new_tokens] * len(rows), batch_size)
        hits = [float(recall_correct(task, p, tok.decode(c, skip_special_tokens=True)))
                for p, c in zip(problems, conts)]
        result.answer_recall = _interval(hits, n_boot, seed)
        result.per_problem["answer_recall"] = hits
    return result
