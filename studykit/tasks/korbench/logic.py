"""KOR-Bench Logic: propositional, predicate, modal and informal logic under the rule's own notation.

A part is right when, after dropping whitespace, it equals the reference (case matters: `Hp`, `P(a)`), or, for a
reference part in words (`false`, `Plausible`, a sentence), when it equals it with case folded. For the two
symbolisation rules (1 and 2, whose notations `propositional.RULE1`/`RULE2` spell out), a formula part is also
right when it is EQUIVALENT to the reference by truth table and uses only connectives the reference uses (so
"only &,||,~ may be used" and "remove every >" hold, and a tautology does not stand in for a formula written
with other connectives); a labelled part (`C1=p&!q`, `E::=::...`) needs the same label. Options picked with
"select all that apply" (`CD`) match in any order. Everything else (predicate logic, sets of clauses, modal and
temporal formulas) is compared as text: the truth table is only used where the rule defines the connectives.
"""

from __future__ import annotations

import re
from typing import Any

from . import propositional as prop
from .answers import compact

__all__ = ["check_part", "NOTATIONS"]

NOTATIONS = {"1": prop.RULE1, "2": prop.RULE2}
_WORDS = re.compile(r"^[A-Za-z][A-Za-z0-9 .,'’:\-]*$")
_LABEL = re.compile(r"^(?P<label>[A-Z][0-9]*(?:&[A-Z][0-9]*)*)(?P<sep>::=::|=)(?P<body>.+)$")
_OPTIONS = re.compile(r"^[A-J]{2,10}$")
MULTI_SELECT = ("select all that apply", "(multiple choice)")


def _formula_equal(reference: str, answer: str, notation: prop.Notation) -> bool:
    ref_label, ans_label = _LABEL.match(reference), _LABEL.match(answer)
    if ref_label:
        if not ans_label or (ref_label["label"], ref_label["sep"]) != (ans_label["label"], ans_label["sep"]):
            return False
        reference, answer = ref_label["body"], ans_label["body"]
    ref_tree = prop.parse(reference, notation)
    ans_tree = prop.parse(answer, notation) if ref_tree is not None else None
    if ans_tree is None:
        return False
    allowed = prop.connectives(ref_tree) | {"not"}
    return prop.connectives(ans_tree) <= allowed and prop.equivalent(ref_tree, ans_tree)


def check_part(reference: str, answer: str, meta: dict[str, Any]) -> bool:
    ref, ans = compact(reference), compact(answer)
    if ref == ans:
        return True
    if _WORDS.match(ref) and re.search(r"[a-z]{3}", ref) and ref.casefold() == ans.casefold():
        return True
    if meta.get("multi_select") and _OPTIONS.match(ref):
        return bool(_OPTIONS.match(ans)) and sorted(ans) == sorted(ref)
    notation = NOTATIONS.get(str(meta.get("rule_id")))
    return notation is not None and _formula_equal(ref, ans, notation)
