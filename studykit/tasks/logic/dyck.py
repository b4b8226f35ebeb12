"""Dyck language: close every open bracket of a prefix, innermost first.

The generator writes a random well-nested bracket sequence and cuts it where some brackets are still
open. The required answer is the *minimal* completion: exactly the closing brackets of the open stack,
innermost first. It is unique, since any string made only of closing brackets that balances the
prefix must close the stack in that order. (Longer completions that open new brackets are not
accepted: the prompt asks for closing brackets only.)

Answer format: the closing brackets, with or without spaces, e.g. `] ) }`. As a convenience, the full
sequence (prefix followed by the closing brackets) is also accepted. The verifier re-checks balance
on the prefix stored in `meta["prefix"]`.

Difficulty: 1 = 2 bracket kinds, prefix 4-8 brackets; 2 = 3 kinds, 10-16; 3 = 4 kinds, 20-30.
"""

from __future__ import annotations

import random
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
CLOSERS = {v: k for k, v in PAIRS.items()}
_KINDS = {1: 2, 2: 3, 3: 4}
_LENGTH = {1: (4, 8), 2: (10, 16), 3: (20, 30)}


def open_stack(seq: str) -> list[str] | None:
    """The brackets left open after `seq`, outermost first; None if `seq` is not a valid prefix."""
    stack: list[str] = []
    for ch in seq:
        if ch in PAIRS:
            stack.append(ch)
        elif ch in CLOSERS:
            if not stack or stack[-1] != CLOSERS[ch]:
                return None
            stack.pop()
        else:
            return None
    return stack


def closing(seq: str) -> str:
    stack = open_stack(seq)
    if stack is None:
        raise ValueError(f"not a Dyck prefix: {seq!r}")
    return "".join(PAIRS[b] for b in reversed(stack))


def _prefix(rng: random.Random, kinds: str, length: int) -> str:
    """A random valid prefix of `length` brackets that leaves at least one open."""
    out: list[str] = []
    stack: list[str] = []
    for pos in range(length):
        remaining = length - pos
        must_open = not stack or (remaining == 1 and len(stack) == 1)
        if must_open or rng.random() < 0.55:
            stack.append(rng.choice(kinds))
            out.append(stack[-1])
        else:
            out.append(PAIRS[stack.pop()])
    return "".join(out)


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    kinds = "".join(rng.sample(list(PAIRS), _KINDS[difficulty]))
    prefix = _prefix(rng, kinds, rng.randint(*_LENGTH[difficulty]))
    answer = " ".join(closing(prefix))
    prompt = (
        "Complete the following bracket sequence so that every bracket is closed in the right order. "
        "Give only the closing brackets that must be appended, nothing else.\n"
        f"Sequence: {' '.join(prefix)}\n"
        "Inside the answer tags write the brackets to append separated by spaces, for example "
        "<answer>] ) }</answer> (that example is only the format)."
    )
    return prompt, answer, {"prefix": prefix}


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    prefix = meta["prefix"]
    text = "".join(strip_wrapping(answer_text).split())
    if len(text) > len(prefix) and text.startswith(prefix):
        text = text[len(prefix):]  # the full sequence was given
    if not text or any(ch not in CLOSERS for ch in text):
        return False
    return open_stack(prefix + text) == []
