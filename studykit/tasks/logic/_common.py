"""Helpers shared by the puzzle modules: the answer-length cap, the never-raise verifier wrapper,
difficulty checking and small text normalisers.

Every puzzle verifier is wrapped by `safe_verify`: text that is not a `str`, longer than
`MAX_ANSWER_CHARS`, or that makes the verifier raise (including `RecursionError`) is simply wrong.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable

MAX_ANSWER_CHARS = 2000
DIFFICULTIES = (1, 2, 3)
_STRIP = " \t\r\n\"'`."

Verifier = Callable[[dict[str, Any], str], bool]
Generated = tuple[str, str, dict[str, Any]]


def safe_verify(fn: Verifier) -> Verifier:
    """Wrap a verifier so it returns False (never raises) on malformed, oversized or hostile input."""

    @functools.wraps(fn)
    def wrapper(meta: dict[str, Any], answer_text: Any) -> bool:
        if not isinstance(answer_text, str) or len(answer_text) > MAX_ANSWER_CHARS:
            return False
        if not isinstance(meta, dict):
            return False
        try:
            return bool(fn(meta, answer_text))
        except Exception:  # noqa: BLE001 - any failure on untrusted text means "not correct"
            return False

    return wrapper


def check_difficulty(difficulty: Any) -> int:
    """`difficulty` as an int in DIFFICULTIES, or a ValueError naming the field and allowed values."""
    if isinstance(difficulty, bool) or difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    return int(difficulty)


def check_rng(rng: Any) -> random.Random:
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    return rng


def strip_wrapping(text: str) -> str:
    """Drop surrounding whitespace, quotes, backticks and a trailing full stop."""
    return text.strip().strip(_STRIP).strip()
