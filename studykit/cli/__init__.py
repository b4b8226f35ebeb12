"""Layer 12, the face: the `studykit` command (`main`) and the sub-commands that expand study files or hand runs
to other engines (`plan`, `sets`, `score`, `toy`, `verl`).

May import: every layer.
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "main": "commands",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
