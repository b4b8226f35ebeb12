"""Boolean expressions: evaluate a nested expression over True/False with `not`, `and`, `or`.

The generator builds a random expression tree and renders every binary sub-expression inside
parentheses, so no operator-precedence knowledge is needed beyond `not` applying to the operand right
after it. The value is computed from the tree and stored in `meta["value"]`; the verifier compares the
normalised answer with it (the tree is also stored in `meta["tree"]` for inspection).

Answer format: `True` or `False` (case-insensitive; surrounding quotes/full stop ignored; also `1`/`0`
are NOT accepted, to keep the answer space to the two words the prompt asks for).

Difficulty: 1 = depth 2 (up to 4 literals); 2 = depth 3; 3 = depth 5, with more negations.
"""

from __future__ import annotations

import random
from typing import Any

from ._common import Generated, check_difficulty, check_rng, safe_verify, strip_wrapping

_DEPTH = {1: 2, 2: 3, 3: 5}
_NOT_P = {1: 0.15, 2: 0.25, 3: 0.35}
_LEAF_P = 0.25  # chance a non-root internal position stops early


def _tree(rng: random.Random, depth: int, not_p: float, root: bool = False) -> Any:
    """A tree: bool leaf, ["not", t] or ["and"|"or", t1, t2]."""
    if depth == 0 or (not root and rng.random() < _LEAF_P):
        node: Any = rng.random() < 0.5
    else:
        node = [rng.choice(("and", "or")), _tree(rng, depth - 1, not_p), _tree(rng, depth - 1, not_p)]
    if rng.random() < not_p:
        node = ["not", node]
    return node


def evaluate(tree: Any) -> bool:
    if isinstance(tree, bool):
        return tree
    if tree[0] == "not":
        return not evaluate(tree[1])
    left, right = evaluate(tree[1]), evaluate(tree[2])
    return (left and right) if tree[0] == "and" else (left or right)


def render(tree: Any) -> str:
    if isinstance(tree, bool):
        return str(tree)
    if tree[0] == "not":
        return f"not {render(tree[1])}"
    return f"({render(tree[1])} {tree[0]} {render(tree[2])})"


def generate(rng: random.Random, difficulty: int) -> Generated:
    check_rng(rng)
    difficulty = check_difficulty(difficulty)
    tree = _tree(rng, _DEPTH[difficulty], _NOT_P[difficulty], root=True)
    text = render(tree)
    if text.startswith("(") and text.endswith(")") and tree[0] != "not":
        text = text[1:-1]  # drop the redundant outermost parentheses
    value = evaluate(tree)
    prompt = (
        "Evaluate the following Boolean expression. `not` negates the value right after it; "
        "parentheses group as usual.\n"
        f"{text}\n"
        "Inside the answer tags write only True or False, for example <answer>False</answer> "
        "(that example is only the format)."
    )
    return prompt, str(value), {"expression": text, "tree": tree, "value": value}


@safe_verify
def verify(meta: dict[str, Any], answer_text: str) -> bool:
    text = strip_wrapping(answer_text).lower()
    if text not in ("true", "false"):
        return False
    value = meta["value"]
    if not isinstance(value, bool):
        return False
    return (text == "true") == value
