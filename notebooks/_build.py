"""Build the study notebooks with nbformat, so they are reviewed as code: `python notebooks/_build.py`.

Each run notebook has one cell tagged `parameters` with one variable per top-level field of
`studykit.config.RunConfig` (defaults = `RunConfig().model_dump()`), then a few short cells that call studykit.
`10_compare.ipynb` takes `study_file`, `uri` and `thresholds` and reports on the study's current cells. The notebooks are written without outputs.
A run notebook raises when its run did not end FINISHED, and prints its run id (the study runner checks that an
executed notebook on disk belongs to the run before it logs it).
Rerun this script whenever RunConfig changes (tests/test_params.py checks the parameters cells are current).
"""

from __future__ import annotations

import pprint
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

THREADS = """import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")"""

SETUP = """import torch
torch.set_num_threads(train.get("threads", 1))
os.environ["OMP_NUM_THREADS"] = str(train.get("threads", 1))
from studykit.config import validate
cfg = validate(dict(study=study, rq=rq, claim=claim, condition=condition, model=model, data=data, reward=reward,
                    algo=algo, train=train, eval=eval, tracking=tracking), source="notebook parameters")
print(cfg.run_name(), cfg.config_hash())"""

TRAIN = """from studykit.trainer import train as run_training
result = run_training(cfg, progress=False)
print(result.status, result.run_id)
if result.status != "FINISHED":  # a FAILED run fails the cell (and the study's exit code)
    raise RuntimeError(f"run {result.run_id} ended {result.status}: {result.reason}")
{k: round(v, 4) for k, v in sorted(result.metrics.items()) if k.startswith(("eval/", "train/accuracy"))}"""

PLOT_RUN = """from studykit import figures
fig = figures.plot_run(result.run_id)"""

ONE_SHOT = """from studykit.analysis import run_summary
summary = run_summary(result.run_id)
{k: v for k, v in summary.items() if "one_shot" in k}"""

ALIGN = """from studykit.alignment import measure
from studykit import figures
res = measure(cfg)
print("run", res.run_id)
print(res.label)
print(res.rule)
fig = figures.plot_alignment(res, cfg)"""

CONTAMINATION = """# The contamination probe (eval.contamination): prefix completion (exact match, ROUGE-L) and answer recall
import pandas as pd
rows = [{"set": s, "stat": stat, "fraction": f, "mean": v[0], "lo": v[1], "hi": v[2]}
        for s, r in res.contamination.items()
        for stat, per in (("em", r.em), ("rougeL", r.rouge_l), ("answer_recall", {"-": r.answer_recall} if r.answer_recall else {}))
        for f, v in per.items()]
pd.DataFrame(rows).round(3) if rows else 'probe off (eval.contamination.enabled = false)'"""


def parameters_source() -> str:
    from studykit.config import RunConfig

    dump = RunConfig().model_dump(mode="python")
    lines = ["# Parameters: one variable per RunConfig field (papermill overrides them)."]
    for key, value in dump.items():
        text = pprint.pformat(value, width=110, sort_dicts=False)
        lines.append(f"{key} = {text}")
    return "\n".join(lines)


def run_notebook(title: str, intro: str, body: list[str]) -> nbformat.NotebookNode:
    params = new_code_cell(parameters_source(), metadata={"tags": ["parameters"]})
    cells = [new_markdown_cell(f"# {title}\n\n{intro}"), new_code_cell(THREADS), params, new_code_cell(SETUP)]
    cells += [new_code_cell(src) for src in body]
    return _notebook(cells)


def _notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives the same file
        cell.id = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


COMPARE_PARAMS = """# Parameters
study_file = "params/studies/toy.yaml"  # the study YAML (absolute, or relative to the working directory)
uri = None  # MLflow tracking URI; None = $MLFLOW_TRACKING_URI or ./mlruns
thresholds = None  # e.g. {"holds": 0.7, "partial": 0.3, "min_effect": 0.02}; None = the study file's `compare`"""

COMPARE = [
    """from studykit import analysis
from studykit.study import expand, load_spec
spec = load_spec(study_file)
cells = expand(study_file)  # the study's current cells: only their runs count
report = analysis.write_report(spec.name, [c.config for c in cells], uri=uri,
                               thresholds=spec.compare if thresholds is None else thresholds, log_to_mlflow=True)
print(f"{report.n_cells} cells, {len(report.missing)} without a FINISHED run")
print("wrote", *[str(p) for p in report.files], sep="\\n  ")""",
    """from IPython.display import Markdown, Image, display
display(Markdown(report.out_dir.joinpath("verdicts.md").read_text()))
for png in sorted(report.out_dir.glob("*.png")):
    display(Image(filename=str(png)))""",
]


def build() -> list[Path]:
    books = {
        "00_alignment.ipynb": run_notebook(
            "Model-task alignment", "pass@k curves of the base model (k = 1..K) with bootstrap bands, the strong/weak "
            "label and the rule that gave it, and the contamination probe (clean or contaminated). Logs one MLflow run "
            "(rq=alignment).", [ALIGN, CONTAMINATION]),
        "01_reward_signal.ipynb": run_notebook(
            "RQ1: does the reward signal matter?", "One model x task x reward x seed per execution "
            "(`reward.name`: ground_truth, random, incorrect, format, majority_vote, self_certainty).",
            [TRAIN, PLOT_RUN]),
        "02_one_shot.ipynb": run_notebook(
            "RQ2: one-shot RL", "`data.selection`: full or one_shot (`data.one_shot.rule`); shows which example was "
            "chosen.", [TRAIN, ONE_SHOT, PLOT_RUN]),
        "03_negative_samples.ipynb": run_notebook(
            "RQ3: negative samples", "`algo.estimator`: grpo, nsr, psr, w_reinforce.", [TRAIN, PLOT_RUN]),
        "10_compare.ipynb": _notebook([
            new_markdown_cell("# Compare: verdict table\n\nExpands the study file, reads the runs of its current "
                              "cells from MLflow (a run of an edited or dropped cell does not count), writes "
                              "reports/<study>/ (verdicts with bootstrap intervals, figures) and logs it as a run "
                              "with rq=report."),
            new_code_cell(THREADS),
            new_code_cell(COMPARE_PARAMS, metadata={"tags": ["parameters"]}),
            *[new_code_cell(src) for src in COMPARE]]),
    }
    paths = []
    for name, nb in books.items():
        nbformat.validate(nb)
        path = HERE / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print("wrote", p)
