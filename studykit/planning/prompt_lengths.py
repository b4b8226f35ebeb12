"""Prompt lengths of a run's task pools, for the pre-flight plan (issue 20, item 7c).

The planner used to assume 256-token prompts for every task; KOR-Bench Counterfactual prompts run to 1.1-1.3k
tokens. `measure(cfg)` renders the run's training pool and eval sets with their templates, as the trainer does
(`tasks.templates.render`, the model's chat template when its tokenizer has one) and counts tokens with the model's
tokenizer (`prompt_token_ids`, as the samplers do) where one is available without the network: the toy tokenizer,
a local folder's, or a hub tokenizer already in the Hugging Face cache. Otherwise it estimates
ceil(characters / CHARS_PER_TOKEN) of the base-model template text, and says so. A pool above SAMPLE prompts is
measured on an evenly spaced SAMPLE of them plus its LONGEST prompts by characters, so the maximum is the pool's.
The plan uses the maximum: after left-padding every micro-batch is as wide as its longest prompt.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

CHARS_PER_TOKEN = 3.5
"""Characters per token when no tokenizer is at hand: BPE vocabularies of Qwen2.5 / Llama-3 run at about 3.5-4.5 on
English and LaTeX; the low end over-counts tokens, the safe side for a memory plan (an estimate, stated as such)."""
SAMPLE = 2000
LONGEST = 64


@dataclass(frozen=True)
class PromptLengths:
    p50: int
    p95: int
    max: int
    n: int
    """Prompts counted."""
    source: str
    """How they were counted (tokenizer or estimate) and over which sets."""

    def note(self) -> str:
        return f"max {self.max:,} tokens (p50 {self.p50:,}, p95 {self.p95:,} of {self.n:,} prompts; {self.source})"


def local_tokenizer(name: str) -> tuple[Any, str] | None:
    """(tokenizer, where from) without touching the network, or None."""
    from pathlib import Path

    if name.startswith("toy:"):
        from studykit.toy.tokenizer import build_tokenizer

        return build_tokenizer(), "the toy tokenizer"
    try:
        from transformers import AutoTokenizer

        path = Path(name).expanduser()
        if path.is_dir():
            return AutoTokenizer.from_pretrained(str(path)), f"tokenizer of {path}"
        return AutoTokenizer.from_pretrained(name, local_files_only=True), f"tokenizer of {name} (local cache)"
    except Exception:  # not cached, no tokenizer files, or an unreadable folder: estimate instead
        return None


def _sample(texts: list[str]) -> tuple[list[int], list[int]]:
    """(indices for quantiles, indices whose maximum is the pool's): all of them for a small pool."""
    if len(texts) <= SAMPLE:
        every = list(range(len(texts)))
        return every, every
    even = np.linspace(0, len(texts) - 1, SAMPLE).round().astype(int).tolist()
    longest = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)[:LONGEST]
    return even, sorted(set(even) | set(longest))


def _pools(cfg) -> list[tuple[str, list, str]]:
    """(name, problems, template) of the training pool (when the run trains) and every eval set."""
    from studykit.tasks import get as get_task

    task = get_task(cfg.data.task, **cfg.data.task_options)
    out = []
    if cfg.train.steps > 0:
        out.append((f"{cfg.data.task}:{cfg.data.train_split}", task.load(cfg.data.train_split)[: cfg.data.train_size],
                    cfg.data.template or task.template))
    for es in cfg.eval.sets:
        t = task if es.task == cfg.data.task else get_task(es.task)
        template = cfg.data.template if es.task == cfg.data.task and cfg.data.template else t.template
        out.append((es.label, t.load(es.split)[: es.limit], template))
    return out


_MEASURED: dict[str, PromptLengths] = {}  # a study's cells share pools: each is measured once per process


def planned(cfg, fallback: int) -> tuple[int, str]:
    """(prompt tokens to plan for, where from): the longest templated prompt of the run's pools, else `fallback`
    when they cannot be read (the reason is given)."""
    try:
        lengths = measure(cfg)
    except Exception as err:  # a user's data file missing or unreadable: plan with the stated assumption
        return fallback, f"assumed {fallback} tokens (the task pools could not be read: {err})"
    return lengths.max, lengths.note()


def measure(cfg) -> PromptLengths:
    """Prompt-length quantiles over the run's training pool and eval sets (see the module docstring)."""
    d = cfg.data
    key = json.dumps([os.getcwd(), cfg.model.name, d.task, d.task_options, d.train_split, d.train_size, d.template,
                      cfg.train.steps > 0, [es.model_dump(mode="json") for es in cfg.eval.sets]], sort_keys=True,
                     default=str)
    if key not in _MEASURED:
        _MEASURED[key] = _measure(cfg)
    return _MEASURED[key]


def _measure(cfg) -> PromptLengths:
    from studykit.policy.sampling.base import prompt_token_ids
    from studykit.tasks.templates import render

    found = local_tokenizer(cfg.model.name)
    tok, how = found if found else (None, f"estimated at {CHARS_PER_TOKEN} characters per token, no local tokenizer")
    quantile_lengths, maxima, names = [], [], []
    for name, problems, template in _pools(cfg):
        if not problems:
            continue
        texts = [render(p, template, tok) for p in problems]
        even, counted = _sample(texts)
        count = (lambda s: len(prompt_token_ids(tok, s))) if tok is not None else \
            (lambda s: math.ceil(len(s) / CHARS_PER_TOKEN))
        lengths = {i: count(texts[i]) for i in counted}
        quantile_lengths += [lengths[i] for i in even]
        maxima.append(max(lengths.values()))
        names.append(name)
    if not maxima:
        raise ValueError("no prompts to measure (every pool is empty)")
    q = np.percentile(quantile_lengths, [50, 95])
    return PromptLengths(int(math.ceil(q[0])), int(math.ceil(q[1])), max(maxima), len(quantile_lengths),
                         f"{how}; {', '.join(names)}")
