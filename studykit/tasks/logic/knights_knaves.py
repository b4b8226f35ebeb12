"""Knights and knaves: every islander always tells the truth (knight) or always lies (knave).

Each islander makes one statement about the others (or themself); the solver must say who is what.
Statements are stored in `meta["statements"]` as small JSON trees:
`["is", i, "knight"|"knave"]`, `["same", i, j]`, `["diff", i, j]`, and at higher difficulty
`["and"|"or"|"if", s1, s2]` over two `is` statements. The generator draws statements until exactly one
assignment of roles is consistent (brute force over all 2^n assignments), so the solution is unique.

Answer format: `Name: knight, Name: knave, ...` (order-insensitive, case-insensitive; `Name is a knight`
and `;`/newline/`and` separators are accepted). The verifier checks the stated roles are *consistent*
with every statement (and that each islander is named exactly once); by uniqueness that is the solution.

Difficulty: 1 = 2 islanders, atomic statements; 2 = 3 islanders, adds and/or; 3 = 5 islanders,
adds "if ... then" and every statement may be compound. SynLogic-style, not from the paper.
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify

NAMES = (
    "Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl", "Liam",
    "Mallory", "Nina", "Oscar", "Peggy", "Quinn", "Rupert", "Sybil", "Trent", "Uma", "Victor", "Wendy",
)
_PEOPLE = {1: 2, 2: 3, 3: 5}
_COMPOUND = {1: (), 2: ("and", "or"), 3: ("and", "or", "if")}
_MAX_TRIES = 5000
_SPLIT_RE = re.compile(r"[,;\n]+|\band\b", re.IGNORECASE)
_ITEM_RE = re.compile(r"^([A-Za-z]+)\s*(?::|=|-|\bis an?\b|\bis\b)\s*(knight|knave)s?$", re.IGNORECASE | re.ASCII)


def _truth(stmt: list[Any], roles: tuple[bool, ...]) -> bool:
    """Whether a statement is true when roles[i] is True for knights."""
    op = stmt[0]
    if op == "is":
        return roles[stmt[1]] == (stmt[2] == "knight")
    if op == "same":
        return roles[stmt[1]] == roles[stmt[2]]
    if op == "diff":
        return roles[stmt[1]] != roles[stmt[2]]
    a, b = _truth(stmt[1], roles), _truth(stmt[2], roles)
    if op == "and":
        return a and b
    if op == "or":
        return a or b
    if op == "if":
        return (not a) or b
    raise ValueError(f"unknown statement operator {op!r}")


def consistent(statements: list[list[Any]], roles: tuple[bool, ...]) -> bool:
    """Knights' statements are true and knaves' statements are false."""
    return all(_truth(s, roles) == roles[i] for i, s in enumerate(statements))


def solutions(statements: list[list[Any]]) -> list[tuple[bool, ...]]:
    n = len(statements)
    return [r for r in itertools.product((True, False), repeat=n) if consistent(statements, r)]


def _atom(rng: random.Random, n: int) -> list[Any]:
    kind = rng.choice(("is", "is", "same", "diff"))
    if kind == "is":
        return ["is", rng.randrange(n), rng.choice(("knight", "knave"))]
    i, j = rng.sample(range(n), 2)
    return [kind, i, j]


def _statement(rng: random.Random, n: int, difficulty: int) -> list[Any]:
    ops = _COMPOUND[difficulty]
    if ops and rng.random() < (0.4 if difficulty == 2 else 0.6):
        i, j = rng.sample(range(n), 2)
        return [rng.choice(ops), ["is", i, rng.choice(("knight", "knave"))], ["is", j, rng.choice(("knight", "knave"))]]
    return _atom(rng, n)


def _say(stmt: list[Any], speaker: int, names: list[str]) -> str:
    op = stmt[0]
    if op == "is":
        who = stmt[1]
        return f"I am a {stmt[2]}" if who == speaker else f"{names[who]} is a {stmt[2]}"
    if op in ("same", "diff"):
        a, b = (names[k] if k != speaker else "I" for k in (stmt[1], stmt[2]))
        if b == "I":
            a, b = b, a
        pair = f"{b} and I" if a == "I" else f"{a} and {b}"
        return f"{pair} are {'the same kind' if op == 'same' else 'different kinds'}"
    left, right = _say(stmt[1], speaker, names), _say(stmt[2], speaker, names)
    if op == "and":
        return f"both {left} and {right}"
    if op == "or":
        return f"at least one holds: {left}, or {right}"
    return f"if {left}, then {right}"


def _render(names: list[str], statements: list[list[Any]]) -> str:
    said = [_say(s, i, names) for i, s in enumerate(statements)]
    lines = [f'{names[i]} says: "{text[0].upper()}{text[1:]}."' for i, text in enumerate(said)]
    example = ", ".join(f"{nm}: {role}" for nm, role in zip(names, itertools.cycle(("knave", "knight"))))
    return (
        "On an island, every inhabitant is either a knight, who always tells the truth, or a knave, "
        f"who always lies. You meet {len(names)} inhabitants: {', '.join(names)}.\n"
        + "\n".join(lines)
        + "\nWho is a knight and who is a knave? Inside the answer tags write every inhabitant's role as "
        f"'Name: knight' or 'Name: knave', separated by commas, for example <answer>{example}</answer> "
        "(that example is only the format, not the solution)."
    )


def generate(rng: random.Random, difficulty: int) -> Generated:
    """A puzzle with exactly one consistent assignment of roles."""
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    n = _PEOPLE[difficulty]
    names = rng.sample(NAMES, n)
    for _ in range(_MAX_TRIES):
        statements = [_statement(rng, n, difficulty) for _ in range(n)]
        found = solutions(statements)
        if len(found) == 1:
            break
    else:  # pragma: no cover - the search space makes this practically unreachable
        raise RuntimeError("knights_knaves: no unique puzzle found")
    roles = found[0]
    answer = ", ".join(f"{nm}: {'knight' if r else 'knave'}" for nm, r in zip(names, roles))
    return _render(names, statements), answer, {"names": names, "statements": statements}


def parse_answer(text: str, names: list[str]) -> tuple[bool, ...] | None:
    """Roles in `names` order, or None unless every name appears exactly once with a role."""
    wanted = {nm.lower(): k for k, nm in enumerate(names)}
    roles: dict[int, bool] = {}
    for part in _SPLIT_RE.split(text.strip().strip(".")):
        part = part.strip().strip(".").strip()
        if not part:
            continue
        m = _ITEM_RE.match(part)
        if not m or m.group(1).lower() not in wanted:
            return None
        k = wanted[m.group(1).lower()]
        if k in roles:
            return None
        roles[k] = m.group(2).lower() == "knight"
    if len(roles) != len(names):
        return None
    return tuple(roles[k] for k in range(len(names)))


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    roles = parse_answer(answer_text, list(meta["names"]))
    return roles is not None and consistent(meta["statements"], roles)
