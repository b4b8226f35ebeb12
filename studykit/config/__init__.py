"""Layer 4, the typed configs: the run config and its sections (`schema`, pydantic, a docstring per field), study
and run params files (`paramfile`), and the checks that need to know what exists (`validation`: task names and
pool sizes, toy presets, sampler options).

May import: studykit.infra, studykit.scoring, studykit.tasks, studykit.toy, studykit.policy (validation reads the
samplers' option names).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "RunConfig": "schema",
    "CompareSpec": "schema",
    "ConfigError": "schema",
    "validate": "schema",
    "load": "schema",
    "load_yaml": "schema",
    "deep_merge": "schema",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
