"""Build the study notebooks with nbformat, so they are reviewed as code: `python notebooks/_build.py`.

Each run notebook has one cell tagged `parameters` with one variable per top-level field of
`studykit.config.schema.RunConfig`; its defaults are the laptop demo of `params/toy/demo.yaml` with the notebook's own
question set (`OWN`), validated and dumped in full, so a notebook run top to bottom by hand takes a minute or two on
a CPU. The study runner and `studykit run` inject a whole validated config, so a study cell never sees these
defaults. `10_compare.ipynb` takes `study_file`, `uri` and `thresholds` and reports on the study's current cells,
inline: the verdict table, the figures and one explanation per claim. The notebooks are written without outputs.
Opened by hand from `notebooks/`, a notebook works from the repository root (so `mlruns/`, `params/`, `reports/`
are the repository's). A run notebook raises when its run did not end FINISHED, and prints its run id (the study
runner checks that an executed notebook on disk belongs to the run before it logs it).
Rerun this script whenever RunConfig or the demo changes (tests/test_params.py checks the parameters cells are current).
"""

from __future__ import annotations

import pprint
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

THREADS = """import os
from pathlib import Path
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if Path.cwd().name == "notebooks" and (Path.cwd().parent / "params").is_dir():  # opened by hand in JupyterLab:
    os.chdir(Path.cwd().parent)  # work from the repository root, beside its mlruns/, params/ and reports/"""

SETUP = """import torch
torch.set_num_threads(train.get("threads", 1))
os.environ["OMP_NUM_THREADS"] = str(train.get("threads", 1))
from studykit.config.schema import validate
if not tracking.get("source_name"):  # the MLflow run names this notebook as its source
    tracking = dict(tracking, source_name="notebooks/{name}")
cfg = validate(dict(study=study, rq=rq, claim=claim, condition=condition, model=model, data=data, reward=reward,
                    algo=algo, train=train, eval=eval, tracking=tracking), source="notebook parameters")
print(cfg.run_name(), cfg.config_hash())"""

TRAIN = """from studykit.engine import train as run_training
result = run_training(cfg, progress=False)
print(result.status, result.run_id)
if result.status != "FINISHED":  # a FAILED run fails the cell (and the study's exit code)
    raise RuntimeError(f"run {result.run_id} ended {result.status}: {result.reason}")
{k: round(v, 4) for k, v in sorted(result.metrics.items()) if k.startswith(("eval/", "train/accuracy"))}"""

PLOT_RUN = """from studykit.analysis import figures
fig = figures.plot_run(result.run_id)"""

ONE_SHOT = """from studykit.analysis.report import run_summary
summary = run_summary(result.run_id)
{k: v for k, v in summary.items() if "one_shot" in k}"""

ALIGN = """from studykit.probes import measure
from studykit.analysis import figures
res = measure(cfg)
print("run", res.run_id)
print(res.label)
print(res.rule)
fig = figures.plot_alignment(res, cfg)"""

CONTAMINATION = """# The contamination probe (eval.contamination): prefix completion (exact match, ROUGE-L), partial-prompt
# answer accuracy (the label's criterion) and answer recall (direct answering of the whole problem: a diagnostic)
import pandas as pd
rows = [{"set": s, "stat": stat, "fraction": f, "mean": v[0], "lo": v[1], "hi": v[2]}
        for s, r in res.contamination.items()
        for stat, per in (("em", r.em), ("rougeL", r.rouge_l), ("answer_acc", r.answer_acc),
                          ("answer_recall", {"-": r.answer_recall} if r.answer_recall else {}))
        for f, v in per.items()]
pd.DataFrame(rows).round(3) if rows else 'probe off (eval.contamination.enabled = false)'"""


DEMO = HERE.parent / "params" / "toy" / "demo.yaml"
# Each run notebook's own question on the demo (deep-merged into params/toy/demo.yaml).
OWN = {
    "00_alignment.ipynb": {"rq": "alignment", "claim": "alignment", "condition": "alignment", "train": {"steps": 0},
                           "eval": {"n_samples": 16, "ks": [1, 2, 4, 8, 16]}},
    "01_reward_signal.ipynb": {},
    "02_one_shot.ipynb": {"rq": "rq2", "claim": "one_shot", "condition": "one_shot",
                          # base_variance needs no earlier run (historical_variance reads the full-data run's history)
                          "data": {"selection": "one_shot", "one_shot": {"rule": "base_variance", "pool": 32,
                                                                         "n_samples": 8}}},
    "03_negative_samples.ipynb": {"rq": "rq3", "claim": "nsr", "condition": "nsr", "algo": {"estimator": "nsr"}},
}
EXAMPLES = {"00_alignment.ipynb": "alignment.yaml", "01_reward_signal.ipynb": "rq1_random.yaml",
            "02_one_shot.ipynb": "rq2_one_shot.yaml", "03_negative_samples.ipynb": "rq3_nsr.yaml"}
RECIPES = ("These defaults are a laptop demo (`params/toy/demo.yaml`: a small toy model, 20 steps; a minute or two on "
           "a CPU, the first time plus the toy model's build). The study's recipes come in through params files: "
           "`studykit run notebooks/{name} -f params/toy/{example}` (toy), `params/paper/base.yaml` (the paper's "
           "GPU recipe), or edit the cell below. `studykit run` and `studykit study` pass a whole validated config; "
           "plain `papermill -f` replaces only the sections the file names.")


def defaults(name: str) -> dict:
    """The validated, complete defaults of run notebook `name` (what its parameters cell holds)."""
    from studykit.config.schema import deep_merge, load_yaml, validate

    return validate(deep_merge(load_yaml(DEMO), OWN[name]), source=f"{DEMO} + {name}").model_dump(mode="python")


def parameters_source(name: str) -> str:
    lines = ["# Parameters: one variable per RunConfig field (papermill overrides them); the demo defaults."]
    for key, value in defaults(name).items():
        text = pprint.pformat(value, width=110, sort_dicts=False)
        lines.append(f"{key} = {text}")
    return "\n".join(lines)


def run_notebook(name: str, title: str, intro: str, body: list[str]) -> nbformat.NotebookNode:
    params = new_code_cell(parameters_source(name), metadata={"tags": ["parameters"]})
    cells = [new_markdown_cell(f"# {title}\n\n{intro}\n\n{RECIPES.format(name=name, example=EXAMPLES[name])}"), new_code_cell(THREADS),
             params, new_code_cell(SETUP.replace("{name}", name))]
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
    """from studykit.analysis import write_report
from studykit.study import expand, load_spec
spec = load_spec(study_file)
cells = expand(study_file)  # the study's current cells: only their runs count
report = write_report(spec.name, [c.config for c in cells], uri=uri, cards=spec.cards(),
                     thresholds=spec.compare if thresholds is None else thresholds, log_to_mlflow=True)
print(f"{report.n_cells} cells, {len(report.missing)} without a FINISHED run")
print("wrote", *[str(p) for p in report.files], sep="\\n  ")""",
    """from IPython.display import Markdown, Image, display
display(Markdown(report.out_dir.joinpath("verdicts.md").read_text()))""",
    """for png in sorted(report.out_dir.glob("*.png")):  # pass@k, training curves, ratios, RQ3 pass@k, alignment curve
    display(Markdown(f"**{png.stem.replace('_', ' ')}** (`{png}`)"))
    display(Image(filename=str(png)))""",
    """curve = report.out_dir / "thresholds.md"  # a grid of three or more models on one task: where each claim turns on
if curve.is_file():
    display(Markdown(curve.read_text()))""",
    """from studykit.analysis import explain_claims
display(Markdown("## Per claim\\n\\n" + explain_claims(report.table, spec.cards())))
print(f"MLflow: the study's parent run {report.run_id} holds this report; `studykit ui`, then open experiment "
      f"{spec.name!r} (its cells are the parent's children; group by the tag `group` to pool seeds)")""",
]


def build() -> list[Path]:
    books = {
        "00_alignment.ipynb": run_notebook(
            "00_alignment.ipynb", "Model-task alignment", "pass@k curves of the base model (k = 1..K) with bootstrap "
            "bands, the strong/weak label and the rule that gave it, and the contamination probe (clean or "
            "contaminated). Logs one MLflow run (rq=alignment).", [ALIGN, CONTAMINATION]),
        "01_reward_signal.ipynb": run_notebook(
            "01_reward_signal.ipynb", "RQ1: does the reward signal matter?", "One model x task x reward x seed per execution "
            "(`reward.name`: ground_truth, random, incorrect, format, majority_vote, self_certainty, noisy_ground_truth).",
            [TRAIN, PLOT_RUN]),
        "02_one_shot.ipynb": run_notebook(
            "02_one_shot.ipynb", "RQ2: one-shot RL", "`data.selection`: full or one_shot (`data.one_shot.rule`); shows which example was "
            "chosen.", [TRAIN, ONE_SHOT, PLOT_RUN]),
        "03_negative_samples.ipynb": run_notebook(
            "03_negative_samples.ipynb", "RQ3: negative samples", "`algo.estimator`: grpo, nsr, psr, w_reinforce.", [TRAIN, PLOT_RUN]),
        "10_compare.ipynb": _notebook([
            new_markdown_cell("# Compare: verdict table\n\nExpands the study file, reads the runs of its current "
                              "cells from MLflow (a run of an edited or dropped cell does not count), writes "
                              "reports/<study>/ (verdicts with bootstrap intervals, figures), logs it into the "
                              "study's parent run (rq=study), and shows the table, the figures and one explanation "
                              "per claim below. Open it on a finished study (`studykit study params/studies/toy.yaml`"
                              " first; set `study_file` for another study)."),
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
