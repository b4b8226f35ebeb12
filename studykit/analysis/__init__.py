"""Layer 10, analysis: FINISHED runs of a study's current cells to tables (`runs`), verdicts with their
intervals (`verdicts`) and collapse diagnostic (`collapse`), figures (`figures`), the report (`report`:
`write_report`, `run_summary`), per-claim explanations (`claim_notes`), every eval set side by side (`set_report`).
Reads MLflow; never expands a study file.

May import: every layer below (infra ... probes, integrations).
"""

from studykit.infra.exports import lazy_exports

_NAMES = {
    "write_report": "report",
    "load_runs": "report",
    "run_summary": "report",
    "explain_claims": "claim_notes",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
