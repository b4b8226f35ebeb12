"""Layer 11, the study: the study file and its cells (`spec`), the runner (`runner`: papermill per cell, skip
finished cells, resume, report), cell claims (`claims`), the progress line (`progress`), where cells run
(`executors`: local process pool with warm kernels, Ray).

May import: every layer below (infra ... analysis).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "expand": "spec",
    "load_spec": "spec",
    "select": "spec",
    "StudySpec": "spec",
    "Cell": "spec",
    "run_study": "runner",
    "run_one": "runner",
    "format_summary": "runner",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
