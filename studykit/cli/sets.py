"""`studykit sets STUDY_FILE [--uri URI] [--out reports]`: every eval set of a study side by side
(`studykit.analysis.set_report` writes it; this face expands the study file)."""

from __future__ import annotations

from studykit.analysis.set_report import write
from studykit.study.spec import expand, load_spec


def register(sub) -> None:
    """`studykit sets STUDY_FILE [--uri URI] [--out reports]`."""
    p = sub.add_parser("sets", help="every eval set of a study side by side (reports/<study>/sets.*)")
    p.add_argument("file", help="study YAML")
    p.add_argument("--uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlruns)")
    p.add_argument("--out", default="reports", help="reports folder")
    p.set_defaults(func=_cmd)


def _cmd(args) -> int:
    spec = load_spec(args.file)
    for path in write(spec.name, [c.config for c in expand(args.file)], args.uri, args.out):
        print("wrote", path)
    return 0
