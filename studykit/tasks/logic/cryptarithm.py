"""Cryptarithms: two-word additions such as SEND + MORE = MONEY, letters standing for digits.

Rules (stated in the prompt): each letter is one digit, different letters are different digits, and
no word starts with 0. The generator picks two random numbers, writes them and their sum with a
random letter-for-digit code, then counts solutions with a column-by-column backtracking solver; while
more than one solution exists it reveals one more letter as a hint ("you are told that E=5"; greedily
the letter whose true digit the fewest remaining solutions share), so every instance has a unique
solution. Of up to 6 random additions it keeps the first that needs no hint, else hints the first.
The verifier does NOT compare with the stored mapping: it checks that the given mapping covers exactly
the puzzle's letters, is one-to-one, respects the hints and the no-leading-zero rule, and makes the
addition true.

Answer format: `A=1, B=2, ...` (any order; `:` instead of `=`, and `;`/space separators accepted;
letters case-insensitive).

Difficulty: 1 = two 2-digit words; 2 = two 3-digit words; 3 = two 4-digit words.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

_DIGITS = {1: 2, 2: 3, 3: 4}
_CANDIDATES = 6
_PAIR_RE = re.compile(r"([A-Za-z])[=:]([0-9])", re.ASCII)


def _value(word: str, mapping: dict[str, int]) -> int:
    out = 0
    for ch in word:
        out = out * 10 + mapping[ch]
    return out


def solutions(words: list[str], hints: dict[str, int], limit: int = 2) -> list[dict[str, int]]:
    """Mappings that solve words[0] + words[1] = words[2] and keep the hints (at most `limit`).

    Column by column from the right: try digits for the column's unassigned addend letters, then the
    sum letter's digit is forced by (column sum + carry) mod 10.
    """
    a, b, c = words
    leading = {w[0] for w in words}
    columns = [[w[-1 - k] for w in (a, b) if k < len(w)] for k in range(len(c))]
    found: list[dict[str, int]] = []

    def addends(pending: list[str], assign: dict[str, int], k: int, carry: int) -> None:
        if len(found) >= limit:
            return
        if not pending:
            result(assign, k, sum(assign[x] for x in columns[k]) + carry)
            return
        letter, used = pending[0], set(assign.values())
        for d in range(1 if letter in leading else 0, 10):
            if d not in used:
                assign[letter] = d
                addends(pending[1:], assign, k, carry)
                del assign[letter]

    def result(assign: dict[str, int], k: int, total: int) -> None:
        letter, digit = c[-1 - k], total % 10
        if letter in assign:
            if assign[letter] == digit:
                column(assign, k + 1, total // 10)
            return
        if digit in assign.values() or (digit == 0 and letter in leading):
            return
        assign[letter] = digit
        column(assign, k + 1, total // 10)
        del assign[letter]

    def column(assign: dict[str, int], k: int, carry: int) -> None:
        if k == len(c):
            if carry == 0:
                found.append(dict(assign))
            return
        addends(list(dict.fromkeys(x for x in columns[k] if x not in assign)), assign, k, carry)

    column(dict(hints), 0, 0)
    return found


def count_solutions(words: list[str], hints: dict[str, int], limit: int = 2) -> int:
    """How many mappings solve the puzzle (counting stops at `limit`)."""
    return len(solutions(words, hints, limit))


def _encode(n: int, code: str) -> str:
    return "".join(code[int(d)] for d in str(n))


def _candidate(rng: random.Random, width: int) -> tuple[list[str], dict[str, int]]:
    """(words, true mapping) for one random addition of two `width`-digit numbers."""
    code = "".join(rng.sample(string.ascii_uppercase, 10))  # code[d] is the letter for digit d
    x, y = (rng.randint(10 ** (width - 1), 10**width - 1) for _ in range(2))
    words = [_encode(x, code), _encode(y, code), _encode(x + y, code)]
    return words, {code[int(d)]: int(d) for d in f"{x}{y}{x + y}"}


def _hints(rng: random.Random, words: list[str], truth: dict[str, int]) -> dict[str, int]:
    """Letters to reveal so the solution is unique, chosen greedily: each step reveals a letter whose
    true digit the fewest remaining solutions share (ties broken by `rng`)."""
    remaining = solutions(words, {}, limit=10**6)
    hints: dict[str, int] = {}
    while len(remaining) > 1:
        share = {x: sum(sol[x] == truth[x] for sol in remaining) for x in sorted(set(truth) - set(hints))}
        best = min(share.values())
        letter = rng.choice([x for x, n in share.items() if n == best])
        hints[letter] = truth[letter]
        remaining = [sol for sol in remaining if sol[letter] == truth[letter]]
    return hints


def generate(rng: random.Random, difficulty: int) -> Generated:
    """The first of up to `_CANDIDATES` random additions with a unique solution, else the first one
    made unique with hints."""
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    drawn = []
    for _ in range(_CANDIDATES):
        drawn.append(_candidate(rng, _DIGITS[difficulty]))
        if count_solutions(drawn[-1][0], {}) == 1:
            words, truth, hints = *drawn[-1], {}
            break
    else:
        words, truth = drawn[0]
        hints = _hints(rng, words, truth)
    answer = ", ".join(f"{k}={truth[k]}" for k in sorted(truth))
    return _prompt(words, hints), answer, {"words": words, "hints": hints}


def _prompt(words: list[str], hints: dict[str, int]) -> str:
    letters = sorted(set("".join(words)))
    told = ""
    if hints:
        told = "You are also told that " + ", ".join(f"{k}={v}" for k, v in sorted(hints.items())) + ".\n"
    return (
        f"Solve the cryptarithm {words[0]} + {words[1]} = {words[2]}. Each letter stands for one digit "
        "(0-9), different letters stand for different digits, and no word starts with the digit 0.\n"
        f"{told}"
        f"Inside the answer tags give the digit of every letter ({', '.join(letters)}) as LETTER=DIGIT "
        "pairs separated by commas, for example <answer>A=1, B=2, C=3</answer> (that example is only "
        "the format)."
    )


def parse_mapping(text: str) -> dict[str, int] | None:
    """Letter -> digit from `A=1, B=2`; None if malformed or a letter repeats."""
    text = re.sub(r"\s*([=:])\s*", r"\1", strip_wrapping(text))
    mapping: dict[str, int] = {}
    for part in re.split(r"[,;\s]+", text):
        if not part:
            continue
        m = _PAIR_RE.fullmatch(part)
        if not m or m.group(1).upper() in mapping:
            return None
        mapping[m.group(1).upper()] = int(m.group(2))
    return mapping


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    words, hints = list(meta["words"]), dict(meta["hints"])
    mapping = parse_mapping(answer_text)
    if mapping is None or set(mapping) != set("".join(words)):
        return False
    if len(set(mapping.values())) != len(mapping):
        return False
    if any(mapping[w[0]] == 0 for w in words) or any(mapping.get(k) != v for k, v in hints.items()):
        return False
    return _value(words[0], mapping) + _value(words[1], mapping) == _value(words[2], mapping)
