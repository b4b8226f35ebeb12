"""Run a Python module as `__main__` in a process that dies with its parent: `python -m studykit.study.executors.child
(--parent PID | --parent-env VAR) MODULE [ARGS...]`.

The study runner starts papermill through it (`--parent <runner pid>`), and the kernelspec that the local executor
writes starts each notebook kernel through it (`--parent-env JPY_PARENT_PID`, the papermill pid that jupyter_client
exports). Each sets Linux PR_SET_PDEATHSIG=SIGKILL before the module runs, so a SIGKILL of the study process kills
papermill, which kills its kernel (ipykernel's own parent poller is only a once-a-second fallback). A parent that
died before the request was made is caught by comparing the actual parent pid with the expected one.
"""

from __future__ import annotations

import os
import runpy
import sys

from studykit.infra.procs import die_with_parent


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[0] not in ("--parent", "--parent-env"):
        raise SystemExit("usage: python -m studykit.study.executors.child (--parent PID | --parent-env VAR) MODULE [ARGS]")
    raw = argv[1] if argv[0] == "--parent" else os.environ.get(argv[1], "")
    die_with_parent(int(raw) if raw.isdigit() else None)
    module, rest = argv[2], argv[3:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
