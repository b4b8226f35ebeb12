"""Screenshots of the MLflow UI on a study store, and the study report's figures, as small PNGs for docs/:

    .venv/bin/python bench/ui_screenshots.py --study toy [--uri sqlite:///mlruns/mlflow.db] [--out docs]

writes `docs/ui_runs.png` (the study's runs view: its parent run expanded, the cells beneath),
`docs/ui_chart.png` (the runs view's chart of `--metric`, default the first `eval/<set>/pass_at_1` of the study, over the
runs `--filter` keeps)
and `docs/report_<figure>.png` (`--report-dir`, default reports/<study>/*.png, scaled to at most `--width` pixels). Starts `studykit ui`
on a free loopback port and drives Debian's chromium headless (studykit.tracking.uicheck); needs the dev extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studykit.tracking import experiment as tracking, uicheck


def small_copy(src: Path, dst: Path, width: int) -> Path:
    from PIL import Image

    img = Image.open(src)
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.convert("RGB").quantize(colors=128).save(dst, optimize=True)  # a palette keeps figures small
    return dst


def study_runs(uri: str, study: str):
    mlc = tracking.client(uri)
    exp = mlc.get_experiment_by_name(study)
    if exp is None:
        sys.exit(f"no experiment {study!r} in {uri}: run the study first")
    runs = mlc.search_runs([exp.experiment_id], max_results=500)
    parent = next((r for r in runs if r.data.tags.get("rq") == tracking.STUDY_RQ), None)
    if parent is None:
        sys.exit(f"experiment {study!r} has no parent run (rq=study): run `studykit study` with this version")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return exp.experiment_id, parent, children


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", required=True)
    ap.add_argument("--uri", default=None, help="default: $MLFLOW_TRACKING_URI, else ./mlruns")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--report-dir", default=None, help="the figures to copy (default: reports/<study>)")
    ap.add_argument("--metric", default=None)
    ap.add_argument("--filter", default=None, help="MLflow search filter of the runs the chart compares, e.g. "
                    "\"tags.rq = 'rq1' and tags.model = 'toy:strong' and tags.seed = '0'\" (default: the first runs "
                    "under the expanded parent)")
    ap.add_argument("--width", type=int, default=900)
    args = ap.parse_args()
    uri, out = tracking.tracking_uri(args.uri), Path(args.out)
    exp_id, parent, children = study_runs(uri, args.study)
    metric = args.metric or min(k for c in children for k in c.data.metrics if k.endswith("/pass_at_1"))
    child = children[0].data.tags["mlflow.runName"]
    wrote = []
    with uicheck.serving(uri) as base, uicheck.page(width=1500, height=900) as pg:
        uicheck.open_runs(pg, base, exp_id, parent.data.tags["mlflow.runName"])
        uicheck.expand(pg, parent.data.tags["mlflow.runName"], child)
        uicheck.widen_names(pg)
        pg.wait_for_timeout(1000)
        wrote.append(uicheck.save(pg, out / "ui_runs.png"))
        if args.filter:  # the chart compares the runs the filter keeps (MLflow lists them under their parent)
            kept = {r.info.run_id for r in tracking.client(uri).search_runs([exp_id], args.filter)}
            shown = [c for c in children if c.info.run_id in kept]
            if not shown:
                sys.exit(f"--filter {args.filter!r} keeps none of the study's runs")
            uicheck.filter_runs(pg, args.filter)
            child = shown[0].data.tags["mlflow.runName"]
        card = uicheck.chart_view(pg, metric, child)
        pg.wait_for_timeout(2000)  # the chart draws after its card appears
        wrote.append(uicheck.save(card, out / "ui_chart.png"))
    for png in sorted(Path(args.report_dir or f"reports/{args.study}").glob("*.png")):
        wrote.append(small_copy(png, out / f"report_{png.name}", args.width))
    for path in wrote:
        small_copy(path, path, args.width) if path.name.startswith("ui_") else None
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
