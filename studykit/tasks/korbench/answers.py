"""KOR-Bench answers: the `[[...]]` block, its parts, normalisation, and the verdict object.

KOR-Bench asks for the answer inside double square brackets; multi-part answers are `[[a];[b];[c]]`.
studykit's template asks for `<answer> </answer>` tags, so the verifier receives the tags' content
(`studykit.scoring.verify.extract_answer`) and reads the `[[...]]` block in it: from the first `[[` to the last `]]`.
Without a `[[` the whole text is the answer. Parts are split at `]` `;` `[` (spaces allowed between); a
bracket-free answer to a k-part question is split at `;` when that gives exactly k parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MAX_ANSWER_CHARS", "MAX_PARTS", "Verdict", "block", "parts", "compact", "strip_wrapping"]

MAX_ANSWER_CHARS = 2_000  # longer answers are wrong (the longest reference, a puzzle grid, has 354 characters)
MAX_PARTS = 16  # the most parts a reference has is 7 (logic rule 2)
_PART_SPLIT = re.compile(r"\]\s*;\s*\[")
_WRAP = " \t\r\n\"'`$"


@dataclass(frozen=True)
class Verdict:
    """What a KOR-Bench verifier decided about one answer."""

    correct: bool
    """Every part matched its reference part."""
    parts: tuple[bool, ...] = ()
    """Per reference part: whether the answer's part matched (empty when the answer could not be split)."""
    reason: str = ""
    """Why the answer is wrong when it is not about one part (`no answer`, `too long`, `3 parts, expected 2`)."""


def strip_wrapping(text: str) -> str:
    """Drop surrounding whitespace, quotes, backticks, `$` and one trailing full stop."""
    text = text.strip(_WRAP)
    return text[:-1].rstrip(_WRAP) if text.endswith(".") else text


def block(text: str) -> str:
    """The content of the `[[...]]` block (first `[[` to last `]]`), or the whole text when there is none."""
    start = text.find("[[")
    end = text.rfind("]]")
    if start < 0 or end < start + 2:
        return text.strip()
    return text[start + 2 : end].strip()


def parts(content: str, expected: int | None = None) -> list[str]:
    """The `];[`-separated parts of a block's content (a bare `;` list when that gives `expected` parts)."""
    found = _PART_SPLIT.split(content)
    if len(found) == 1 and expected and expected > 1:
        bare = content.split(";")
        if len(bare) == expected:
            found = bare
    return [p.strip() for p in found]


def compact(text: str, casefold: bool = False) -> str:
    """Without any whitespace (KOR-Bench's reference answers often drop spaces: `Someproductsare...`)."""
    out = re.sub(r"\s+", "", strip_wrapping(text))
    return out.casefold() if casefold else out
