"""The verifier's pair table: (pred, gold, expected, category, known_miss) rows for `math_equal`.

Shared by tests/test_verify.py (which asserts every row that is not a known miss) and
bench/verifier_pairs.py (which prints the accuracy over all rows). Golds are written as MATH-500 writes them.
`known_miss` is "" for a row the verifier must get right, else the reason math-verify gets a fair case wrong.
"""

from __future__ import annotations

from typing import NamedTuple


class Pair(NamedTuple):
    pred: str | None
    gold: str
    expected: bool
    category: str
    known_miss: str = ""


PAIRS: list[Pair] = [
    # fractions
    Pair("1/2", "\\frac{1}{2}", True, "fraction"),
    Pair("\\dfrac{1}{2}", "\\frac{1}{2}", True, "fraction"),
    Pair("\\frac12", "\\frac{1}{2}", True, "fraction"),
    Pair("\\frac{2}{4}", "\\frac{1}{2}", True, "fraction"),
    Pair("-\\frac{3}{4}", "\\frac{-3}{4}", True, "fraction"),
    Pair("\\frac{1}{3}", "\\frac{1}{2}", False, "fraction"),
    Pair("\\frac{14}{3}", "\\frac{14}{3}", True, "fraction"),
    Pair("\\frac{3}{14}", "\\frac{14}{3}", False, "fraction"),
    # decimals
    Pair("0.5", "\\frac{1}{2}", True, "decimal"),
    Pair("4.666667", "\\frac{14}{3}", True, "decimal"),
    Pair("4.67", "\\frac{14}{3}", False, "decimal"),
    Pair("0.33", "\\frac{1}{3}", False, "decimal"),
    Pair("2.50", "2.5", True, "decimal"),
    Pair("2.05", "2.5", False, "decimal"),
    Pair(".5", "0.5", True, "decimal"),
    # radicals
    Pair("2\\sqrt{2}", "\\sqrt{8}", True, "radical"),
    Pair("\\sqrt{8}", "2\\sqrt2", True, "radical"),
    Pair("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}2", True, "radical"),
    Pair("\\sqrt{3}/2", "\\frac{\\sqrt{3}}{2}", True, "radical"),
    Pair("\\sqrt{2}", "\\sqrt{3}", False, "radical"),
    Pair("3\\sqrt{2}", "2\\sqrt{3}", False, "radical"),
    Pair("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True, "radical"),
    # tuples and points
    Pair("(3, \\pi/2)", "\\left( 3, \\frac{\\pi}{2} \\right)", True, "tuple"),
    Pair("\\left(3,\\frac{\\pi}{2}\\right)", "\\left( 3, \\frac{\\pi}{2} \\right)", True, "tuple"),
    Pair("(3, \\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)", False, "tuple"),
    Pair("(\\frac{\\pi}{2}, 3)", "\\left( 3, \\frac{\\pi}{2} \\right)", False, "tuple"),
    Pair("(1, -2, 3)", "(1,-2,3)", True, "tuple"),
    # intervals
    Pair("(2, 3]", "(2,3]", True, "interval"),
    Pair("[2,3)", "(2,3]", False, "interval"),
    Pair("(-\\infty, 0)", "(-\\infty,0)", True, "interval"),
    Pair("(-\\infty, 0]", "(-\\infty,0)", False, "interval"),
    Pair("[1,2] \\cup [3,4]", "[1,2]\\cup[3,4]", True, "interval"),
    Pair("1 \\le x \\le 2", "[1,2]", True, "interval"),
    Pair("1 < x \\le 2", "[1,2]", False, "interval"),
    # sets and lists of solutions
    Pair("\\{1,2\\}", "\\{2,1\\}", True, "set"),
    Pair("1,2", "\\{1,2\\}", True, "set"),
    Pair("-2, 1", "1, -2", True, "set"),
    Pair("2, -1", "-2, 1", False, "set"),
    Pair("\\{1,2,3\\}", "\\{1,2\\}", False, "set"),
    # degrees
    Pair("30", "30^\\circ", True, "degree"),
    Pair("30^{\\circ}", "30^\\circ", True, "degree"),
    Pair("30 degrees", "30^\\circ", True, "degree"),
    Pair("60^\\circ", "30^\\circ", False, "degree"),
    # currency
    Pair("18.90", "\\$18.90", True, "currency"),
    Pair("\\$18.90", "18.90", True, "currency"),
    Pair("18.9", "\\$18.90", True, "currency"),
    Pair("\\$19.80", "\\$18.90", False, "currency"),
    # percent
    Pair("25\\%", "25\\%", True, "percent"),
    Pair("25", "25\\%", True, "percent"),
    Pair("0.25", "25\\%", True, "percent"),
    Pair("35\\%", "25\\%", False, "percent"),
    # text wrappers and word answers
    Pair("\\text{(C)}", "\\text{(C)}", True, "text"),
    Pair("(C)", "\\text{(C)}", True, "text"),
    Pair("C", "\\text{(C)}", True, "text"),
    Pair("(D)", "\\text{(C)}", False, "text"),
    Pair("\\text{Evelyn}", "\\text{Evelyn}", True, "text"),
    Pair("Evelyn", "\\text{Evelyn}", True, "text"),
    Pair("\\text{Alice}", "\\text{Evelyn}", False, "text"),
    Pair("6", "\\text{6}", True, "text"),
    Pair("10\\text{ cm}", "10", True, "text"),
    Pair("\\text{10 cm}", "10", True, "text", "math-verify reads a unit inside \\text{} as part of the value"),
    Pair("the answer is $\\frac{1}{2}$", "\\frac{1}{2}", True, "text"),
    # integers, thousands separators, boxed and dollar wrappers
    Pair("27", "27", True, "integer"),
    Pair("027", "27", True, "integer"),
    Pair("28", "27", False, "integer"),
    Pair("1,000", "1000", True, "integer"),
    Pair("1{,}000", "1000", True, "integer"),
    Pair("\\boxed{27}", "27", True, "integer"),
    Pair("$27$", "27", True, "integer"),
    Pair("-27", "27", False, "integer"),
    # expressions, equations, complex numbers, matrices
    Pair("p - q", "p-q", True, "expression"),
    Pair("q-p", "p-q", False, "expression"),
    Pair("x^2+2x+1", "(x+1)^2", True, "expression"),
    Pair("x^2+1", "(x+1)^2", False, "expression"),
    Pair("x=5", "5", True, "equation"),
    Pair("y = 2x + 3", "y=2x+3", True, "equation"),
    Pair("3+2i", "2i+3", True, "complex"),
    Pair("3-2i", "3+2i", False, "complex"),
    Pair("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", True, "matrix"),
    Pair("\\begin{pmatrix}2\\\\1\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", False, "matrix"),
    Pair("\\pi", "\\pi", True, "constant"),
    Pair("\\pi", "3", False, "constant"),
    # malformed and hostile predictions
    Pair(None, "5", False, "malformed"),
    Pair("", "5", False, "malformed"),
    Pair("\\frac{1}{", "\\frac{1}{2}", False, "malformed"),
    # whitespace (issue 20: all of it was deleted, so `2 3` matched `23`)
    Pair("2 3", "23", False, "spacing"),
    Pair("2\n3", "23", False, "spacing"),
    Pair("\\frac {1} {2}", "\\frac{1}{2}", True, "spacing"),
    Pair("x = 3", "x=3", True, "spacing"),
    Pair("\\left( 1 , 2 \\right)", "(1,2)", True, "spacing"),
    Pair("10 000", "10000", True, "spacing"),
    Pair("}}}{{{", "5", False, "malformed"),
    Pair("\x00\xff\x01binary", "5", False, "malformed"),
    Pair("1" * 5000, "5", False, "malformed"),
    Pair("10^{10^{10^{10}}}", "5", False, "pathological"),
]
