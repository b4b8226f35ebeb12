"""`studykit export verl PARAMS --out DIR` and `studykit import verl RUN_ID --dir DIR` (registered by cli.py)."""

from __future__ import annotations

import sys


def config_of(path: str, cell: str | None):
    """The RunConfig of a run params file, or of cell `cell` of a study file (the same config hash the study's
    runner and report use)."""
    from studykit.config.schema import ConfigError, load, load_yaml
    from studykit.study.spec import expand, is_study

    if not is_study(load_yaml(path)):
        if cell:
            raise ConfigError(f"{path} is a run params file; --cell is only for a study file")
        return load(path)
    cells = {c.name: c for c in expand(path)}
    if cell not in cells:
        raise ConfigError(f"{path} is a study: --cell NAME expected (got {cell!r}); its cells: {', '.join(cells)}")
    return cells[cell].config


def cmd_export(args) -> int:
    from studykit.integrations.verl_export import LAUNCH, export

    result = export(config_of(args.params, args.cell), args.out, uri=args.uri, create_run=not args.no_run,
                    max_prompt_length=args.max_prompt_length)
    print(f"wrote {result.n_train} training and {sum(result.n_val.values())} evaluation problems "
          f"({', '.join(f'{k}: {v}' for k, v in result.n_val.items())})")
    print("  " + "\n  ".join(str(f) for f in result.files))
    if result.run_id:
        print(f"MLflow run {result.run_id} (SCHEDULED until verl starts it)")
    print("verl departs from studykit's loop here:\n  - " + "\n  - ".join(result.departures))
    print(f"launch: bash {result.out_dir / LAUNCH}")
    return 0


def cmd_import(args) -> int:
    from studykit.integrations.verl_import import import_run

    done = import_run(args.run_id, args.dir, uri=args.uri, status=args.status)
    print(f"run {done.run_id}: renamed {len(done.renamed)} verl validation metrics; rescored validation steps "
          f"{done.steps or 'none (no dumps under validation/)'}")
    for line in done.mismatches:
        print(f"  verl and studykit disagree: {line}")
    if done.alignment:
        print(f"alignment: {done.alignment}")
    for key in sorted(done.metrics):
        print(f"  {key} = {done.metrics[key]:.4f}")
    if done.reason:
        print(f"error: run ended {done.status}: {done.reason}", file=sys.stderr)
        return 1
    if args.status:
        print(f"run ended {done.status}")
    return 0


def add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="hand a run to another engine (verl)")
    engines = p.add_subparsers(dest="engine", required=True)
    v = engines.add_parser("verl", help="parquet in verl's RL schema, a launch script and a pre-created MLflow run")
    v.add_argument("params", help="run params YAML, or a study YAML with --cell")
    v.add_argument("--cell", help="cell name of the study (as `studykit study FILE --dry-run` lists them)")
    v.add_argument("--out", required=True, help="folder for train.parquet, val.parquet, launch.sh, manifest.json")
    v.add_argument("--uri", help="MLflow tracking URI (default: tracking.uri, $MLFLOW_TRACKING_URI or ./mlruns)")
    v.add_argument("--no-run", action="store_true", help="write the files only; create no MLflow run")
    v.add_argument("--max-prompt-length", type=int, help="verl's data.max_prompt_length (default: the longest "
                   "exported prompt, measured, rounded up to 128); refused when a prompt is longer")
    v.set_defaults(func=cmd_export)


def add_import_parser(sub) -> None:
    p = sub.add_parser("import", help="bring another engine's run into studykit's names (verl)")
    engines = p.add_subparsers(dest="engine", required=True)
    v = engines.add_parser("verl", help="rename verl's validation metrics, rescore its validation dumps")
    v.add_argument("run_id")
    v.add_argument("--dir", required=True, help="the export folder (manifest.json, val.parquet, validation/)")
    v.add_argument("--uri", help="MLflow tracking URI (default: the one recorded at export)")
    v.add_argument("--status", choices=("FINISHED", "FAILED", "KILLED"), help="end the run with this status")
    v.set_defaults(func=cmd_import)


