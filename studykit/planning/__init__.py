"""Layer 5, planning: the pre-flight memory plan of a GPU run (`plan`: `make_plan`, `preflight`, refused before
any weight loads) and the architectures it counts (`arch`: shipped model configs, the toy's). Its command is
`studykit.cli.plan`.

May import: every layer below (infra, scoring, tasks, toy, policy, config).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "make_plan": "plan",
    "preflight": "plan",
    "PlanRefused": "plan",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
