"""Layer 1, scoring (beside `studykit.tasks`, the same layer): answer extraction, the format check and math
equivalence (`verify`), the reward conditions by name (`rewards`), pass@k, avg@n, maj@n and the bootstrap
intervals (`metrics`). Pure of models and MLflow.

May import: studykit.infra, studykit.tasks (a reward asks the problem's task for its verifier).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "extract_answer": "verify",
    "format_ok": "verify",
    "math_equal": "verify",
    "pass_at_k": "metrics",
    "pass_at_k_curve": "metrics",
    "bootstrap_ci": "metrics",
    "RewardResult": "rewards",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
