"""`python -m studykit.toy.build_child NAME KNOBS_JSON`: build one toy model into the cache and report progress on
stdout, for a study's build stage (`studykit.study.executors.builds`).

Prints `progress <done> <total>` lines (about every 1% of the pretraining steps) and ends with `built <folder>`;
exits non-zero with the error on stderr when the build fails. One torch thread, as a build inside a notebook kernel
(the study's children all run with OMP_NUM_THREADS=1), so the entry is the same, bit for bit, whichever builds it.
"""

from __future__ import annotations

import json
import os
import sys

PROGRESS = "progress"
BUILT = "built"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m studykit.toy.build_child NAME KNOBS_JSON", file=sys.stderr)
        return 2
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from .cache import ensure_built

    torch.set_num_threads(1)
    name, knobs = argv[0], json.loads(argv[1])
    last = [-1]

    def report(done: int, total: int) -> None:
        if done == total or done * 100 // total != last[0]:
            last[0] = done * 100 // total
            print(f"{PROGRESS} {done} {total}", flush=True)

    folder = ensure_built(name, progress=False, on_step=report, **knobs)
    print(f"{BUILT} {folder}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
