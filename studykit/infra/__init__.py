"""Layer 0, the plumbing: file locks (`locks`), process trees and ports (`procs`), stage timers (`timing`), the
MLflow store handle (`store`: which store a process talks to, and a client whose first use of a local store is
locked), and the lazy-export helper of every layer's `__init__` (`exports`).

May import: nothing from studykit.
"""

from .exports import lazy_exports

_NAMES = {
    "file_lock": "locks",
    "polling_lock": "locks",
    "tracking_uri": "store",
    "client": "store",
    "connect": "store",
    "startup_metrics": "timing",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
