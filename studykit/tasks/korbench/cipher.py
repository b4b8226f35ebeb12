"""KOR-Bench Cipher: encrypt or decrypt a short text under a new cipher rule. A part is right when it
equals the reference after dropping whitespace and surrounding quotes; case matters (some ciphertexts
mix cases).
"""

from __future__ import annotations

from typing import Any

from .answers import compact

__all__ = ["check_part"]


def check_part(reference: str, answer: str, meta: dict[str, Any]) -> bool:
    return compact(answer) == compact(reference)
