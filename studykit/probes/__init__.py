"""Layer 8, the probes of a base model: alignment (`alignment`: pass@k curves and the strong/weak label),
contamination (`contamination`: truncated-prompt completion and answer recall), the toy models' report
(`toy_report`).

May import: every layer below (infra ... engine).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "measure": "alignment",
    "contamination": "contamination",
    "alignment_report": "toy_report",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
