"""Layer 3, the policy: loading a model from a hub id, a local folder, `toy:<preset>` or a stored run (`models`),
LoRA and QLoRA, the stored-policy format (`store`), and the samplers (`sampling`: HF everywhere, vLLM with the
adapter swapped in per step).

May import: studykit.infra, studykit.scoring, studykit.tasks, studykit.toy.
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "Policy": "models",
    "load_policy": "models",
    "from_config": "models",
    "make_sampler": "sampling",
    "log_policy": "store",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
