"""KOR-Bench Puzzle: word games, grids (sudoku-like, minesweeper-like), arithmetic puzzles. The answer is
compared with the one reference after normalisation: case folded, whitespace runs (tabs too) made one space,
line breaks read as `,` (several references list items one per line), spaces beside punctuation dropped,
trailing separators dropped (some references end a grid with `,`).

Limitation (stated, not hidden): a puzzle with several valid solutions (an anagram with other valid words, a
24-style expression written differently) is right only in the reference's form; no puzzle text is evaluated.
"""

from __future__ import annotations

import re
from typing import Any

from .answers import strip_wrapping

__all__ = ["check_part", "normalise"]

_PUNCT = re.compile(r"\s*([,;:|()\[\]{}=+\-*/×])\s*")


def normalise(text: str) -> str:
    text = strip_wrapping(text).casefold()
    text = re.sub(r"[ \t]*(\r?\n)+[ \t]*", ",", text)
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = _PUNCT.sub(r"\1", text)
    return text.strip(" ,;")


def check_part(reference: str, answer: str, meta: dict[str, Any]) -> bool:
    return normalise(answer) == normalise(reference)
