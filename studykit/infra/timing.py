"""Where a cell's time goes before its run does any work: `startup_metrics()` is logged at step 0 of every
training and alignment run, so `bench/study_time.py` can split a cell's wall time into startup (kernel start,
imports, toy model and store setup), training, evaluation and the rest.

`time/startup_s`: wall seconds from this process's creation (the notebook kernel, forked or spawned) to the call;
`time/startup_cpu_s`: CPU seconds (user + system) this process spent until then, which a busy machine does not
inflate the way it inflates wall time. No studykit imports.
"""

from __future__ import annotations

import os
import time


def startup_metrics() -> dict[str, float]:
    import psutil

    cpu = os.times()
    return {"time/startup_s": max(time.time() - psutil.Process().create_time(), 0.0),
            "time/startup_cpu_s": cpu.user + cpu.system}
