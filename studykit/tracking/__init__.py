"""Layer 6, tracking: the study's MLflow experiment, run names, tags and owners, lookups by config
(`experiment`), the tracking server (`server`), the UI (`ui`) and its browser check (`uicheck`). The store
handle itself (`tracking_uri`, `client`) is `studykit.infra.store`, re-exported here.

May import: every layer below (infra, scoring, tasks, toy, policy, config, planning).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "experiment_for": "experiment",
    "experiment_id": "experiment",
    "find_run": "experiment",
    "find_runs": "experiment",
    "run_tags": "experiment",
    "display_name": "experiment",
    "study_run": "experiment",
    "owner_tags": "experiment",
    "owner_state": "experiment",
    "git_sha": "experiment",
    "tracking_uri": "experiment",
    "client": "experiment",
    "connect": "experiment",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
