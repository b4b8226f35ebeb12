"""Game of 24 (and its "reach a target" variant): combine the given numbers, each exactly once, with
+ - * / and parentheses to make the target.

The verifier never evaluates text as code. It tokenises the answer itself (non-negative integer
literals, `+ - * /`, parentheses; `×`/`÷` are read as `*`/`/`), parses it with a small recursive-
descent parser (`expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`,
`factor := INT | '(' expr ')'`; no unary minus, no `**`, no other symbols), caps the length
(`MAX_EXPR_CHARS`), the token count and the nesting depth, and computes in exact rational arithmetic
(`fractions.Fraction`). Division by zero, a literal not in the multiset of given numbers, or a number
used the wrong number of times makes the answer wrong. ANY expression that meets the rules passes.
An optional trailing `= <target>` is allowed (the right side must then be the target).

Generator: difficulty 1 = four numbers 1-9, target 24; 2 = four numbers 1-13, target 24;
3 = five numbers 1-13 and a target other than 24 in 25-150. Instances for target 24 are drawn until a
solver finds a solution; target-variant instances take the value of a random expression over the
numbers, so every instance is solvable. Either way `answer` holds one solution.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import Any, Iterator

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

MAX_EXPR_CHARS = 200
MAX_TOKENS = 80
MAX_DEPTH = 12
MAX_LITERAL_DIGITS = 4
_TOKEN_RE = re.compile(r"\s*(?:([0-9]+)|([-+*/()]))", re.ASCII)
_ALIASES = str.maketrans({"×": "*", "÷": "/", "−": "-"})
_SPEC = {1: (4, 9), 2: (4, 13), 3: (5, 13)}
_MAX_TRIES = 10_000


class ParseError(ValueError):
    pass


def tokenize(text: str) -> list[str]:
    """Tokens of an arithmetic expression; ParseError on any character outside the whitelist."""
    if len(text) > MAX_EXPR_CHARS:
        raise ParseError("expression too long")
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character at {pos}")
        if m.group(1) is not None and len(m.group(1)) > MAX_LITERAL_DIGITS:
            raise ParseError("number literal too long")
        tokens.append(m.group(1) or m.group(2))
        pos = m.end()
        if len(tokens) > MAX_TOKENS:
            raise ParseError("too many tokens")
    return tokens


class _Parser:
    """Recursive descent over a token list; collects the integer literals it reads."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.depth = tokens, 0, 0
        self.literals: list[int] = []

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        tok = self._peek()
        if tok is None:
            raise ParseError("unexpected end of expression")
        self.pos += 1
        return tok

    def parse(self) -> Fraction:
        value = self._expr()
        if self._peek() is not None:
            raise ParseError(f"unexpected token {self._peek()!r}")
        return value

    def _expr(self) -> Fraction:
        value = self._term()
        while self._peek() in ("+", "-"):
            op, rhs = self._take(), self._term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def _term(self) -> Fraction:
        value = self._factor()
        while self._peek() in ("*", "/"):
            op, rhs = self._take(), self._factor()
            if op == "*":
                value = value * rhs
            elif rhs == 0:
                raise ParseError("division by zero")
            else:
                value = value / rhs
        return value

    def _factor(self) -> Fraction:
        tok = self._take()
        if tok == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ParseError("parentheses nested too deeply")
            value = self._expr()
            if self._take() != ")":
                raise ParseError("expected ')'")
            self.depth -= 1
            return value
        if tok.isdigit():
            self.literals.append(int(tok))
            return Fraction(int(tok))
        raise ParseError(f"unexpected token {tok!r}")


def evaluate(text: str) -> tuple[Fraction, list[int]]:
    """(exact value, integer literals used) of an expression; ParseError if it breaks any rule."""
    parser = _Parser(tokenize(text))
    return parser.parse(), parser.literals


def check(numbers: list[int], target: int, text: str) -> bool:
    """Whether `text` uses exactly `numbers` (as a multiset) and equals `target`."""
    text = strip_wrapping(text).translate(_ALIASES)
    if text.count("=") > 1:
        return False
    if "=" in text:
        text, rhs = text.split("=")
        if not re.fullmatch(r"\s*[0-9]{1,6}\s*", rhs, re.ASCII) or int(rhs) != target:
            return False
    try:
        value, literals = evaluate(text)
    except ParseError:
        return False
    return sorted(literals) == sorted(numbers) and value == target


def _search(items: list[tuple[Fraction, str]], target: Fraction) -> Iterator[str]:
    """Expressions over all items that equal target (depth-first, combining two items at a time)."""
    if len(items) == 1:
        if items[0][0] == target:
            yield items[0][1]
        return
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (a, ea), (b, eb) = items[i], items[j]
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            options = [(a + b, f"({ea} + {eb})"), (a * b, f"({ea} * {eb})"), (a - b, f"({ea} - {eb})"),
                       (b - a, f"({eb} - {ea})")]
            if b != 0:
                options.append((a / b, f"({ea} / {eb})"))
            if a != 0:
                options.append((b / a, f"({eb} / {ea})"))
            for value, expr in options:
                yield from _search(rest + [(value, expr)], target)


def solve(numbers: list[int], target: int) -> str | None:
    """One expression over `numbers` equal to `target`, or None."""
    for expr in _search([(Fraction(n), str(n)) for n in numbers], Fraction(target)):
        return _tidy(expr)
    return None


def _tidy(expr: str) -> str:
    """Drop one pair of redundant outermost parentheses."""
    if expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for k, ch in enumerate(expr):
            depth += (ch == "(") - (ch == ")")
            if depth == 0 and k < len(expr) - 1:
                return expr
        return expr[1:-1]
    return expr


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[Fraction, str] | None:
    items = [(Fraction(n), str(n)) for n in numbers]
    while len(items) > 1:
        (a, ea), (b, eb) = [items.pop(rng.randrange(len(items))) for _ in range(2)]
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op]
        items.append((value, f"({ea} {op} {eb})"))
    return items[0][0], _tidy(items[0][1])


def _prompt(numbers: list[int], target: int) -> str:
    return (
        f"Using the numbers {', '.join(map(str, numbers))}, each exactly once, and only the operations "
        "+, -, *, / with parentheses, write an arithmetic expression whose value is exactly "
        f"{target}. Division is exact (fractions are allowed in between); no other operations, no "
        "concatenating digits, no unary minus.\n"
        "Inside the answer tags write only the expression, for example <answer>(1 + 2) * 3 - 4</answer> "
        "(that example is only the format)."
    )


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    count, high = _SPEC[difficulty]
    for _ in range(_MAX_TRIES):
        numbers = [rng.randint(1, high) for _ in range(count)]
        if difficulty < 3:
            target, expr = 24, solve(numbers, 24)
        else:
            made = _random_expression(rng, numbers)
            if made is None or made[0].denominator != 1 or not 25 <= made[0] <= 150:
                continue
            target, expr = int(made[0]), made[1]
        if expr is not None:
            return _prompt(numbers, target), expr, {"numbers": numbers, "target": target}
    raise RuntimeError("game24: no solvable instance found")  # pragma: no cover


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    numbers, target = meta["numbers"], meta["target"]
    if not all(type(n) is int for n in numbers) or type(target) is not int:
        return False
    return check(list(numbers), target, answer_text)
