"""KOR-Bench verifiers against the reference answers, per category.

Prints, for each category: how many of the 250 reference answers verify when written as a model would (inside
`<answer>` tags, through `studykit.scoring.verify.extract_answer`), and again with a space after each part separator
(`[[a]; [b]]`) and around a formula's connectives; how many logic parts are decided by truth table; and the false
accepts: pairs of questions of the SAME rule with different reference answers where one's reference is accepted
for the other (a verifier too loose to tell two answers apart). Operation's pairs go through math-verify (about
0.1 s each on 2 shared cores: a few minutes).

    .venv/bin/python bench/korbench_agreement.py [--categories operation,logic]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

from studykit.tasks.korbench import CATEGORIES, KorBenchTask, logic
from studykit.tasks.korbench import propositional as prop
from studykit.tasks.korbench.answers import block, parts
from studykit.scoring.verify import extract_answer


def _spaced(answer: str, category: str) -> str:
    found = parts(block(answer))
    if category == "logic":
        found = [re.sub(r"(\|\||=::>|&|\||>|=)", r" \1 ", p) if "::=::" not in p else p for p in found]
    return "[[" + "]; [".join(found) + "]]"


def _truth_table_parts(problems) -> tuple[int, int]:
    used = total = 0
    for p in problems:
        notation = logic.NOTATIONS.get(p.meta["rule_id"])
        for part in parts(block(p.answer)):
            total += 1
            m = logic._LABEL.match(part)
            used += notation is not None and prop.parse(m["body"] if m else part, notation) is not None
    return used, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--categories", default=",".join(CATEGORIES))
    args = ap.parse_args()
    for category in args.categories.split(","):
        task = KorBenchTask(category)
        problems = task.load("all")
        start = time.monotonic()
        plain = sum(task.verify(p, extract_answer(f"<think>.</think> <answer>{p.answer}</answer>")) for p in problems)
        spaced = sum(task.verify(p, _spaced(p.answer, category)) for p in problems)
        by_rule = defaultdict(list)
        for p in problems:
            by_rule[p.meta["rule_id"]].append(p)
        pairs = loose = 0
        for group in by_rule.values():
            for p in group:
                for q in group:
                    if re.sub(r"\s", "", q.answer) != re.sub(r"\s", "", p.answer):
                        pairs += 1
                        loose += task.verify(p, q.answer)
        line = (f"{category}: references {plain}/250, spaced {spaced}/250, same-rule false accepts {loose}/{pairs}"
                f" ({time.monotonic() - start:.0f} s)")
        if category == "logic":
            used, total = _truth_table_parts(problems)
            line += f", parts decided by truth table when not equal as text: {used}/{total}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
