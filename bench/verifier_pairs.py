"""Print the accuracy of `studykit.scoring.verify.math_equal` on the shared pair table (tests/verifier_pairs.py).

Run from the repository root: `.venv/bin/python bench/verifier_pairs.py [-v]` (-v lists every wrong row).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifier_pairs import PAIRS  # noqa: E402

from studykit.scoring.verify import math_equal  # noqa: E402


def main(verbose: bool = False) -> int:
    started = time.perf_counter()
    right = 0
    for pair in PAIRS:
        got = math_equal(pair.pred, pair.gold)
        right += got == pair.expected
        if verbose and got != pair.expected:
            note = f"  (known miss: {pair.known_miss})" if pair.known_miss else ""
            print(f"wrong [{pair.category}] pred={pair.pred!r:.60} gold={pair.gold!r} got={got}{note}")
    misses = sum(bool(p.known_miss) for p in PAIRS)
    print(f"verifier accuracy: {right}/{len(PAIRS)} ({misses} known misses in the table); "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main("-v" in sys.argv[1:]))
