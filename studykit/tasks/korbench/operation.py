"""KOR-Bench Operation: new operators (`a※b`, `f△g`) defined by a rule; the answer is a number, an
expression, a set, a matrix or several alternatives joined by `or` (`3or-41/3`).

A part is right when, after dropping whitespace, it equals the reference; else, for a reference with `or`
alternatives, when the answer has as many alternatives and each matches a different one; else, for a set
`{...}`, when the items match in any order; else by `studykit.scoring.verify.math_equal` (math-verify on LaTeX only,
under its wall-clock deadline). Tuples, matrices and `x=2,y=3` are compared exactly: math-verify reads a
comma list as a set (`2,1` equals `1,2`, measured), which would accept swapped entries.
"""

from __future__ import annotations

import re
from typing import Any

from studykit.scoring.verify import math_equal
from .answers import compact

__all__ = ["check_part", "MAX_ALTERNATIVES"]

MAX_ALTERNATIVES = 8  # references have at most 3
_OR = re.compile(r"(?<![A-Za-z\\])or(?![A-Za-z])")
_SET = re.compile(r"^\\?\{(?P<items>[^{}]*)\\?\}$")
_SYMBOLS = {"≥": "\\geq ", "≤": "\\leq ", "×": "\\times ", "−": "-", "∣": "|"}
TIMEOUT_S = 2.0  # as studykit.scoring.verify.math_equal's default


def _latex(text: str) -> str:
    for symbol, command in _SYMBOLS.items():
        text = text.replace(symbol, command)
    return text


def _equal(reference: str, answer: str) -> bool:
    if compact(reference) == compact(answer):
        return True
    if "," in reference:
        return False  # tuples and matrices: exact only (module docstring)
    return math_equal(_latex(answer.strip()), _latex(reference), timeout_s=TIMEOUT_S)


def _matched(refs: list[str], answers: list[str]) -> bool:
    """Each answer matches a different reference (greedy is exact here: distinct references never match one answer)."""
    if len(refs) != len(answers):
        return False
    left = list(refs)
    for answer in answers:
        hit = next((r for r in left if _equal(r, answer)), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


def check_part(reference: str, answer: str, meta: dict[str, Any]) -> bool:
    if compact(reference) == compact(answer):
        return True
    if _OR.search(reference):
        refs, answers = _OR.split(reference), _OR.split(answer)
        return len(answers) <= MAX_ALTERNATIVES and _matched([r.strip() for r in refs], [a.strip() for a in answers])
    ref_set, ans_set = _SET.match(compact(reference)), _SET.match(compact(answer))
    if ref_set and ans_set:
        refs, answers = ref_set.group("items").split(","), ans_set.group("items").split(",")
        return len(answers) <= 64 and len(set(answers)) == len(answers) and _matched(refs, answers)
    return _equal(reference, answer)
