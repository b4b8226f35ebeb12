"""KOR-Bench Counterfactual: questions about a fictional world whose rules contradict real life; the
answer is one option letter (A-D). A part is right when it is the reference letter, alone or as `(C)`,
`C.` or `C)` (any case). Each question also records the real-life answer (`real_life_answer`), which is
wrong under the rule whenever it differs from the reference.
"""

from __future__ import annotations

import re
from typing import Any

from .answers import compact

__all__ = ["check_part"]

_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.)]?$")


def check_part(reference: str, answer: str, meta: dict[str, Any]) -> bool:
    m = _LETTER.match(compact(answer))
    return bool(m) and m.group(1).upper() == compact(reference).upper()
