"""The toy pretraining corpus: `<bos> prompt response <eos>` sequences drawn fresh from a `ToyRecipe`.

A response is `<think> METHOD s1 s2 s3 s4 s5 </think> <answer> X </answer>` with X the last state.
Methods: `sum` (running sum, correct), `count` (1..5, answers 5), `max` (running maximum). Slips hit
`sum` traces only, at the addition steps s2..s5 (s1 just copies d1), and carry forward; states are
clamped to 0..45 so they stay in the vocabulary. A broken-format trace has one of its four tags deleted
or replaced by a junk word. Prompts come only from the training pool (`sample_train_digits`), never
from the held-out pool. Labels mask the `<bos>` and prompt (loss on the response and `<eos>` only).

Contamination (`recipe.contamination_rate` > 0): that share of sequences is a `test`-pool prompt (never a
`test_clean` one) answered in the recall form `<think> </think> <answer> X </answer>` with the correct sum,
and their labels keep the prompt, so the benchmark text itself is memorised, as pretraining on a leaked
benchmark would. With the rate at 0 no random number is drawn for it, so a clean recipe's stream is unchanged.
"""

from __future__ import annotations

import random
from itertools import accumulate

import torch

from studykit.tasks.toy import RECALL_HEAD, prompt_for, sample_train_digits, test_pool

from .presets import ToyRecipe
from .tokenizer import BOS, EOS, JUNK_WORDS, MAX_NUMBER, METHODS, PAD, TAGS, TOKEN_ID, ids_of

IGNORE = -100


def method_states(digits: tuple[int, ...], method: str) -> list[int]:
    """The clean trace states of `method` on `digits`."""
    if method == "sum":
        return list(accumulate(digits))
    if method == "count":
        return list(range(1, len(digits) + 1))
    if method == "max":
        return list(accumulate(digits, max))
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")


def slipped_sum(digits: tuple[int, ...], rate: float, kind: str, rng: random.Random) -> list[int]:
    """Running sum where each addition step slips with probability `rate`; errors carry forward."""
    states = [digits[0]]
    for d in digits[1:]:
        value = states[-1] + d
        if rate and rng.random() < rate:
            value += 1 if kind == "systematic" else rng.choice((-3, -2, -1, 1, 2, 3))
        states.append(min(max(value, 0), MAX_NUMBER))
    return states


def response_words(method: str, states: list[int]) -> list[str]:
    """The well-formed response for a method and its states."""
    return ["<think>", method, *map(str, states), "</think>", "<answer>", str(states[-1]), "</answer>"]


def break_format(words: list[str], rng: random.Random) -> list[str]:
    """Delete one tag, or replace it with a junk word."""
    tag_positions = [i for i, w in enumerate(words) if w in TAGS]
    i = rng.choice(tag_positions)
    if rng.random() < 0.5:
        return words[:i] + words[i + 1 :]
    return words[:i] + [rng.choice(JUNK_WORDS)] + words[i + 1 :]


def sample_example(recipe: ToyRecipe, rng: random.Random) -> tuple[str, str]:
    """One (prompt, response) pair of the corpus."""
    digits = sample_train_digits(rng)
    method = rng.choices(METHODS, weights=[recipe.method_mix[m] for m in METHODS])[0]
    if method == "sum":
        states = slipped_sum(digits, recipe.slip_rate, recipe.slip_kind, rng)
    else:
        states = method_states(digits, method)
    words = response_words(method, states)
    if recipe.broken_format_rate and rng.random() < recipe.broken_format_rate:
        words = break_format(words, rng)
    return prompt_for(digits), " ".join(words)


def encode_example(prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Token ids of `<bos> prompt response <eos>` and labels that mask `<bos>` and the prompt."""
    head = ids_of([BOS, *prompt.split()])
    tail = ids_of([*response.split(), EOS])
    return head + tail, [IGNORE] * len(head) + tail


def contaminated_example(rng: random.Random) -> tuple[str, str]:
    """A memorised (prompt, response): a uniformly drawn `test`-pool prompt and its correct sum, no steps."""
    digits = rng.choice(test_pool())
    return prompt_for(digits), f"{RECALL_HEAD} {sum(digits)} </answer>"


def encode_memorised(prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Token ids of `<bos> prompt response <eos>` with labels on everything but `<bos>`."""
    ids = ids_of([BOS, *prompt.split(), *response.split(), EOS])
    return ids, [IGNORE, *ids[1:]]


def sample_row(recipe: ToyRecipe, rng: random.Random) -> tuple[list[int], list[int]]:
    """One encoded corpus sequence (ids, labels)."""
    if recipe.contamination_rate and rng.random() < recipe.contamination_rate:
        return encode_memorised(*contaminated_example(rng))
    return encode_example(*sample_example(recipe, rng))


def make_batch(recipe: ToyRecipe, rng: random.Random, batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """A right-padded training batch: input_ids, attention_mask, labels."""
    rows = [sample_row(recipe, rng) for _ in range(batch_size or recipe.batch_size)]
    width = max(len(ids) for ids, _ in rows)
    pad = TOKEN_ID[PAD]
    ids = [x + [pad] * (width - len(x)) for x, _ in rows]
    labels = [y + [IGNORE] * (width - len(y)) for _, y in rows]
    mask = [[1] * len(x) + [0] * (width - len(x)) for x, _ in rows]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }
