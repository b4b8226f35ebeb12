"""Measure a toy model's alignment with the toy task: pass@k, format rate and the methods it samples.

A thin wrapper over the study's own measurement (`studykit.engine.evaluation.evaluate_set` with the HF sampler at T=1,
no top-p), so the toy build benchmark and the alignment notebook score completions the same way: the answer is
`studykit.scoring.verify.extract_answer`, the format is `studykit.scoring.verify.format_ok`, the method is
`studykit.tasks.toy.method_of`, and pass@k is the unbiased estimator.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from studykit.engine.evaluation import evaluate_set, metric_key
from studykit.tasks.toy import METHODS, ToyTask

KS = (1, 4, 16, 32)
MAX_NEW_TOKENS = 24  # a toy response is about 13 tokens


def alignment_report(model, tokenizer, n_problems: int = 256, n_samples: int = 32, seed: int = 0) -> dict[str, Any]:
    """pass@k for k in 1, 4, 16, 32 (those <= n_samples), format rate, method shares, on held-out problems."""
    from studykit.policy.sampling.hf import HFSampler

    pool = ToyTask().load("test")
    if not 1 <= n_problems <= len(pool):
        raise ValueError(f"n_problems must be in 1..{len(pool)}, got {n_problems}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    problems = random.Random(seed).sample(pool, n_problems)
    sampler = HFSampler(SimpleNamespace(model=model, tokenizer=tokenizer))
    ks = [k for k in KS if k <= n_samples]
    res = evaluate_set(sampler, problems, "toy", task=ToyTask(), template="raw", tokenizer=tokenizer, n=n_samples, ks=ks,
                       temperature=1.0, max_new_tokens=MAX_NEW_TOKENS, seed=seed)
    report: dict[str, Any] = {f"pass@{k}": res.metrics[metric_key("toy", "pass", k)] for k in ks}
    report["format_rate"] = res.metrics[metric_key("toy", "format_rate")]
    report["method_shares"] = {m: res.metrics.get(metric_key("toy", f"method_share/{m}"), 0.0)
                               for m in (*METHODS, "other")}
    report.update(n_problems=n_problems, n_samples=n_samples, seed=seed)
    return report
