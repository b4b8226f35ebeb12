"""The `studykit` command line.

    studykit study FILE [--workers N] [--only PATTERN] [--dry-run] [--executor local|ray] [--address A]
                                                                                 run a study grid (papermill cells)
    studykit run NOTEBOOK -f params.yaml                                         run one cell
    studykit report FILE|NAME [--out reports]                                    verdict table + figures
    studykit ui [--host 127.0.0.1] [--port 5000]                                 MLflow UI on the study store
    studykit server [--backend-store-uri URI] [--artifacts-destination D] [--host H] [--port P]   a tracking server
    studykit params check FILE...                                                validate run / study files
    studykit score ...   /   studykit toy build ...                              (from studykit.cli.score / studykit.toy)

Commands that read or write runs take `--tracking-uri URI` (alias `--uri`; default $MLFLOW_TRACKING_URI, else the
embedded store under ./mlruns). Every command returns an exit code (0 = success); config errors print the offending
file and field.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from studykit.config.schema import ConfigError


def _optional(sub, module: str, attr: str, name: str, help_text: str) -> None:
    """Register a sub-command owned by another module; a stub that explains when that module is missing."""
    try:
        getattr(importlib.import_module(module), attr)(sub)
    except (ImportError, AttributeError) as err:
        stub = sub.add_parser(name, help=f"{help_text} (unavailable)", add_help=False)
        stub.add_argument("rest", nargs=argparse.REMAINDER)
        stub.set_defaults(func=lambda args, e=err: _missing(name, module, e))


def _missing(name: str, module: str, err: Exception) -> int:
    print(f"studykit {name}: not available: {module} could not be loaded ({err})", file=sys.stderr)
    return 2


def cmd_study(args) -> int:
    from studykit.infra.diskfull import DiskFull
    from studykit.infra.outage import ServerDown
    from studykit.study.runner import format_summary, run_study

    try:
        summary = run_study(args.file, workers=args.workers, only=args.only, dry_run=args.dry_run, uri=args.uri,
                            compare=not args.no_compare, executor=args.executor, address=args.address,
                            rerun_stale=args.rerun_stale)
    except (DiskFull, ServerDown) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.dry_run:
        from studykit.study.spec import expand, select

        for cell in select(expand(args.file), args.only):
            print(f"{cell.name:48s} {cell.notebook.name:26s} {cell.config.config_hash()}  after={cell.after}")
    print(format_summary(summary))
    return summary.exit_code


def cmd_run(args) -> int:
    from studykit.study.runner import run_one

    outcome = run_one(args.notebook, args.params, uri=args.uri)
    print(f"{outcome.name}: {outcome.status}" + (f" (run {outcome.run_id})" if outcome.run_id else ""))
    if outcome.error:
        print(outcome.error, file=sys.stderr)
    return 0 if outcome.status == "done" else 1


def _study_file(arg: str) -> Path:
    """A study file path, or a bare NAME for params/studies/NAME.yaml (under the working directory, else the
    repository)."""
    path = Path(arg)
    if path.is_file():
        return path
    if path.suffix == "" and len(path.parts) == 1:
        from studykit.study.spec import ROOT

        for base in dict.fromkeys((Path.cwd(), ROOT)):
            candidate = base / "params" / "studies" / f"{arg}.yaml"
            if candidate.is_file():
                return candidate
    known = sorted(p.stem for p in (Path.cwd() / "params" / "studies").glob("*.yaml"))
    raise ConfigError(f"{arg!r} is neither a study file nor a study name with params/studies/{arg}.yaml"
                      + (f" (studies here: {', '.join(known)})" if known else ""))


def cmd_report(args) -> int:
    from studykit.analysis.report import write_report
    from studykit.config.schema import CompareSpec
    from studykit.study.spec import expand, load_spec

    path = _study_file(args.study)
    spec = load_spec(path)
    given = {k: v for k, v in (("holds", args.holds), ("partial", args.partial), ("min_effect", args.min_effect))
             if v is not None}
    th = CompareSpec.model_validate(spec.compare.model_dump() | given)
    report = write_report(spec.name, [c.config for c in expand(path)], uri=args.uri, thresholds=th, out_dir=args.out,
                          cards=spec.cards())
    print((report.out_dir / "verdicts.md").read_text())
    print("wrote", *report.files, sep="\n  ")
    from studykit.tracking.provenance import rows

    if flagged := rows(report.table):  # last, where it is seen: rows whose runs do not share one version
        print(f"provenance: {len(flagged)} rows with mixed or unknown code version / base weights:", *flagged,
              sep="\n")
    return 0


def cmd_ui(args) -> int:
    from studykit.tracking.experiment import tracking_uri
    from studykit.tracking.ui import serve

    uri = tracking_uri(args.uri)
    if uri.startswith(("http://", "https://")):  # a tracking server serves the UI itself
        print(f"{uri} is a tracking server: open it in a browser (it serves the MLflow UI)")
        return 0
    return serve(uri, args.host, args.port, args.workers, args.jobs)


def _check_one(path: str) -> str:
    """What a valid params file is ('run NAME' / 'study with N cells'); ConfigError when it is not valid."""
    from studykit.config.schema import load_yaml, validate
    from studykit.study.spec import expand, is_study

    data = load_yaml(path)
    if is_study(data):
        return f"study with {len(expand(path))} cells"
    return f"run {validate(data, path).run_name()}"


def cmd_params_check(args) -> int:
    """Check every file, report each bad one (and why) and go on; exit 1 when any was bad."""
    bad = 0
    for f in args.files:
        try:
            print(f"ok  {f}: {_check_one(f)}")
        except ConfigError as err:
            bad += 1
            print(f"BAD {f}: {err}", file=sys.stderr)
        except Exception as err:  # noqa: BLE001 - one broken file must not hide the others
            bad += 1
            print(f"BAD {f}: {type(err).__name__}: {err}", file=sys.stderr)
    if bad:
        print(f"{bad} of {len(args.files)} files invalid", file=sys.stderr)
    return 1 if bad else 0


def _uri_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", "--uri", dest="uri", metavar="URI",
                   help="MLflow tracking URI: a `studykit server` http:// URI, or a store (default: "
                        "$MLFLOW_TRACKING_URI, else sqlite under ./mlruns)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studykit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _optional(sub, "studykit.cli.score", "add_score_parser", "score", "score a JSONL of completions")
    _optional(sub, "studykit.cli.toy", "add_toy_parser", "toy", "the toy world: build tiny pretrained models")
    _optional(sub, "studykit.cli.verl", "add_export_parser", "export", "hand a run to verl")
    _optional(sub, "studykit.cli.verl", "add_import_parser", "import", "import a verl run's validation")
    _optional(sub, "studykit.tracking.server", "register", "server", "a shared MLflow tracking server")
    _optional(sub, "studykit.cli.plan", "register", "plan", "expected peak GPU memory of a run, and whether it fits")
    _optional(sub, "studykit.cli.sets", "register", "sets", "every eval set of a study side by side")

    p = sub.add_parser("study", help="run every cell of a study file with papermill")
    p.add_argument("file", help="study YAML (params/studies/*.yaml)")
    p.add_argument("--workers", type=int, help="cells run at once (default 2 with the local executor, each with its "
                                               "train.threads; with ray: every ready cell, Ray queues them)")
    p.add_argument("--only", help="glob (or substring) on cell names, e.g. 'random-*-s0'")
    p.add_argument("--dry-run", action="store_true", help="validate and list the cells; run nothing")
    p.add_argument("--no-compare", action="store_true", help="skip the compare notebook at the end")
    p.add_argument("--rerun-stale", action="store_true",
                   help="run again the finished cells whose run has another code_version than this checkout "
                        "(untagged runs of older code included); without it they are reused with a warning")
    _uri_option(p)
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool on this machine (default); ray: one Ray task per cell")
    p.add_argument("--address", help="Ray cluster for --executor ray: auto, ray://HOST:PORT (default: a Ray instance "
                                     "on this machine, or $RAY_ADDRESS)")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("run", help="run one notebook with one params file")
    p.add_argument("notebook")
    p.add_argument("-f", "--params", required=True, help="params YAML (a run file)")
    _uri_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="verdict table, figures and verdicts.json for a study")
    p.add_argument("study", metavar="FILE", help="study YAML, or NAME for params/studies/NAME.yaml")
    _uri_option(p)
    p.add_argument("--out", default="reports")
    p.add_argument("--holds", type=float, help="default: the study file's compare.holds")
    p.add_argument("--partial", type=float, help="default: the study file's compare.partial")
    p.add_argument("--min-effect", type=float, help="default: the study file's compare.min_effect")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("ui", help="MLflow UI on the study store (stops with its children on Ctrl-C or SIGTERM)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others get a warning)")
    p.add_argument("--port", type=int, default=5000)
    _uri_option(p)
    p.add_argument("--workers", type=int, default=1, help="web workers (default 1: one local user)")
    p.add_argument("--jobs", action="store_true", help="also start MLflow's job runner (server-side jobs)")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("params", help="parameter files")
    psub = p.add_subparsers(dest="params_command", required=True)
    c = psub.add_parser("check", help="validate run or study YAML files")
    c.add_argument("files", nargs="+")
    c.set_defaults(func=cmd_params_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
