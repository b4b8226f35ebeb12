"""Propositional formulas: a small whitelisted grammar and exact equivalence by truth table.

KOR-Bench Logic asks to symbolise statements (`(p3&~p4)||(~p3&p4)`); many strings are right, so two formulas
are compared by their truth tables over the propositions they mention, never by string and never by `eval`.

Grammar (a recursive-descent parser over a token list; nothing else is accepted):

    iff     := implies (IFF implies)*            left-associative
    implies := or (IMPLIES implies)?             right-associative
    or      := and ((OR | NOR) and)*
    and     := unary ((AND | NAND) unary)*
    unary   := NOT unary | '(' iff ')' | ATOM | '0' | '1'

An ATOM is a lower-case letter with optional digits (`p`, `q2`, `p13`); `0`/`1` are the constants. Each
rule of KOR-Bench spells its connectives its own way (rule 1: `~ & || =::> =`; rule 2: `! & | > = ⇑ ⇓`);
`Notation` holds one spelling table, and the common Unicode forms (`¬ ∧ ∨ → ↔`) are accepted by both.

Bounds (hostile text stays cheap): at most `MAX_CHARS` characters, `MAX_ATOMS` distinct propositions and
`MAX_DEPTH` nested operators; beyond any of them `parse` returns None. A truth table is one pass over the tree
with each proposition as a bit mask over all 2^n rows, so n <= 16 costs microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Formula", "Notation", "RULE1", "RULE2", "parse", "equivalent", "MAX_ATOMS", "MAX_CHARS", "MAX_DEPTH"]

MAX_CHARS = 400
MAX_ATOMS = 16
MAX_DEPTH = 64

Formula = tuple  # ("atom", name) | ("const", 0/1) | ("not", f) | (op, f, g) with op in OPS
OPS = ("and", "or", "implies", "iff", "nand", "nor")
_COMMON = {"¬": "not", "∧": "and", "∨": "or", "→": "implies", "↔": "iff", "⇒": "implies", "⇔": "iff"}


@dataclass(frozen=True)
class Notation:
    """How one KOR-Bench rule spells each connective (longest spellings are matched first)."""

    spellings: dict[str, str]


# Rule 1 "Propositional Logic Formalization": ~p, p&q, p||q, p=::>q, p=q (its rule text).
RULE1 = Notation({"~": "not", "&": "and", "||": "or", "=::>": "implies", "=": "iff", **_COMMON})
# Rule 2 "Equivalence Calculus": ! & | > = and NAND ⇑, NOR ⇓ (its rule text). `∣` (U+2223) is accepted as `|`:
# one of the rule's own reference answers writes it so (`(!(!p∣q))∣r`, question 1).
RULE2 = Notation({"!": "not", "&": "and", "|": "or", "∣": "or", ">": "implies", "=": "iff", "⇑": "nand", "⇓": "nor",
                  **_COMMON})

_ATOM = re.compile(r"[a-z][0-9]*")


def _tokens(text: str, notation: Notation) -> list[str] | None:
    """The token list, or None on any character outside the grammar."""
    spellings = sorted(notation.spellings, key=len, reverse=True)
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "()01":
            out.append(ch)
            i += 1
            continue
        m = _ATOM.match(text, i)
        if m:
            out.append(m.group(0))
            i = m.end()
            continue
        for s in spellings:
            if text.startswith(s, i):
                out.append(notation.spellings[s])
                i += len(s)
                break
        else:
            return None
    return out


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.at, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        tok = self.tokens[self.at]
        self.at += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError("formula nested too deeply")

    def iff(self) -> Formula:
        left = self.implies()
        while self.peek() == "iff":
            self.take()
            left = ("iff", left, self.implies())
        return left

    def implies(self) -> Formula:
        self.enter()
        left = self.disj()
        if self.peek() == "implies":
            self.take()
            left = ("implies", left, self.implies())
        self.depth -= 1
        return left

    def disj(self) -> Formula:
        left = self.conj()
        while self.peek() in ("or", "nor"):
            left = (self.take(), left, self.conj())
        return left

    def conj(self) -> Formula:
        left = self.unary()
        while self.peek() in ("and", "nand"):
            left = (self.take(), left, self.unary())
        return left

    def unary(self) -> Formula:
        self.enter()
        tok = self.peek()
        if tok is None:
            raise ValueError("formula ends early")
        self.take()
        if tok == "not":
            out: Formula = ("not", self.unary())
        elif tok == "(":
            out = self.iff()
            if self.peek() != ")":
                raise ValueError("unclosed parenthesis")
            self.take()
        elif tok in ("0", "1"):
            out = ("const", int(tok))
        elif _ATOM.fullmatch(tok):
            out = ("atom", tok)
        else:
            raise ValueError(f"unexpected {tok!r}")
        self.depth -= 1
        return out


def parse(text: str, notation: Notation) -> Formula | None:
    """The formula tree of `text`, or None when it is not a formula of the grammar (or breaks a bound)."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHARS:
        return None
    tokens = _tokens(text, notation)
    if not tokens:
        return None
    parser = _Parser(tokens)
    try:
        tree = parser.iff()
    except ValueError:
        return None
    if parser.at != len(tokens) or len(atoms(tree)) > MAX_ATOMS:
        return None
    return tree


def atoms(tree: Formula) -> set[str]:
    if tree[0] == "atom":
        return {tree[1]}
    if tree[0] == "const":
        return set()
    return set().union(*(atoms(child) for child in tree[1:]))


def connectives(tree: Formula) -> set[str]:
    """The connective kinds a formula uses (`not` included)."""
    if tree[0] in ("atom", "const"):
        return set()
    return {tree[0]}.union(*(connectives(child) for child in tree[1:]))


def _table(tree: Formula, masks: dict[str, int], full: int) -> int:
    """Bit r of the result is the formula's value in truth-table row r."""
    kind = tree[0]
    if kind == "atom":
        return masks[tree[1]]
    if kind == "const":
        return full if tree[1] else 0
    if kind == "not":
        return full & ~_table(tree[1], masks, full)
    a, b = _table(tree[1], masks, full), _table(tree[2], masks, full)
    value = {"and": a & b, "or": a | b, "implies": (full & ~a) | b, "iff": full & ~(a ^ b),
             "nand": full & ~(a & b), "nor": full & ~(a | b)}[kind]
    return value


def truth_table(tree: Formula, names: list[str]) -> int:
    """The formula's truth table over `names` (row r gives proposition k the value of bit k of r), as bits."""
    n = len(names)
    rows = 1 << n
    full = (1 << rows) - 1
    masks = {}
    for k, name in enumerate(names):
        size = 1 << k  # rows with bit k set come in blocks of `size`, after `size` rows without it
        masks[name] = (full // ((1 << size) + 1)) << size
    return _table(tree, masks, full)


def equivalent(a: Formula, b: Formula) -> bool:
    """Same truth value under every assignment of the propositions either mentions."""
    names = sorted(atoms(a) | atoms(b))
    if len(names) > MAX_ATOMS:
        return False
    return truth_table(a, names) == truth_table(b, names)
