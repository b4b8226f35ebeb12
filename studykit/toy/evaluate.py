"""Measure a toy model's alignment with the toy task: pass@k, format rate and the methods it samples.

Samples `n_samples` completions per held-out problem (a seeded choice of `n_problems` from
`test_pool()`) with plain HF `generate` at temperature 1 (no top-k/top-p), batched with left padding,
and scores them with unbiased pass@k = 1 - C(n-c,k)/C(n,k). A completion is correct when the text in
its `<answer>` tags is the sum, whatever the rest of its format; format-ok when it is exactly
`<think> ... </think> <answer> ... </answer>` with no stray tags inside.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from typing import Any

import torch

from studykit.tasks.toy import prompt_for, test_pool

from .tokenizer import METHODS

KS = (1, 4, 16, 32)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FORMAT_RE = re.compile(r"\s*<think>((?:(?!</?think>|</?answer>).)*)</think>\s*<answer>((?:(?!</?answer>|</?think>).)*)</answer>\s*", re.DOTALL)


def _pass_at_k(n: int, c: int, k: int) -> float:
    try:
        from studykit.metrics import pass_at_k
    except ImportError:
        return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)
    return pass_at_k(n, c, k)


def extract(text: str) -> str | None:
    """The last `<answer>` content, stripped, or None."""
    found = _ANSWER_RE.findall(text)
    return found[-1].strip() if found else None


def format_ok(text: str) -> bool:
    return _FORMAT_RE.fullmatch(text) is not None


def method_of(text: str) -> str:
    """The method word right after `<think>`, or `other`."""
    words = text.split()
    return words[1] if len(words) > 1 and words[0] == "<think>" and words[1] in METHODS else "other"


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int = 24, batch: int = 1024) -> list[list[str]]:
    """`n` completions per prompt at temperature 1 (texts without special tokens)."""
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    for i in range(0, len(flat), batch):
        enc = tokenizer(flat[i : i + batch], return_tensors="pt", padding=True)
        out = model.generate(
            **enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return [texts[j * n : (j + 1) * n] for j in range(len(prompts))]


def alignment_report(model, tokenizer, n_problems: int = 256, n_samples: int = 32, seed: int = 0) -> dict[str, Any]:
    """pass@k for k in 1, 4, 16, 32 (those <= n_samples), format rate, method shares, on held-out problems."""
    pool = test_pool()
    if not 1 <= n_problems <= len(pool):
        raise ValueError(f"n_problems must be in 1..{len(pool)}, got {n_problems}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    problems = random.Random(seed).sample(list(pool), n_problems)
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    completions = sample(model, tokenizer, [prompt_for(d) for d in problems], n_samples)
    model.train(was_training)
    counts = [sum(extract(t) == str(sum(d)) for t in texts) for d, texts in zip(problems, completions)]
    every = [t for texts in completions for t in texts]
    methods = Counter(method_of(t) for t in every)
    report: dict[str, Any] = {
        f"pass@{k}": sum(_pass_at_k(n_samples, c, k) for c in counts) / n_problems for k in KS if k <= n_samples
    }
    report["format_rate"] = sum(map(format_ok, every)) / len(every)
    report["method_shares"] = {m: methods[m] / len(every) for m in (*METHODS, "other")}
    report.update(n_problems=n_problems, n_samples=n_samples, seed=seed)
    return report
