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


YOUR_CLAIM_PARAMS = """# Parameters
size = "full"  # "full": toy:strong, toy:weak-method, toy:weak-skill x {ground truth, the claim} x 3 seeds, 50 steps;
               # "tiny": the CI check (one small toy:custom model, 1 seed, 2 steps: its numbers mean nothing)
max_chars = 53  # the claim's knob: a right answer longer than this is paid nothing. A reasoned toy answer runs 51-56
                # characters (`<think> sum 7 14 23 29 33 </think> <answer> 33 </answer>` is 56, measured on
                # toy:strong samples), so 53 pays the right answers whose running sums stay short and not the others
                # (at 56 every right answer is paid and the claim is ground truth itself)
predicts = "holds-everywhere"  # the card's prediction: holds-when-strong, holds-everywhere, fails-everywhere, ...
workers = 2  # cells at once (each uses one core)
uri = None  # MLflow tracking URI; None = $MLFLOW_TRACKING_URI, else ./mlruns
example = None  # the folder that holds the my_claim package; None = examples/my_claim of this checkout"""

YOUR_CLAIM_INTRO = """# Test your own claim

A claim, end to end: **"a reward that pays only SHORT right answers works as well as ground truth"**. The reward is
the worked example `examples/my_claim` (`my_claim.rewards:short_answer`), a plug-in: studykit runs it where a
shipped reward goes, without editing studykit. This notebook

1. writes the claim (the reward, then its card: what it says, who says it, what it predicts),
2. checks it as `studykit params check` does (and shows a bad plug-in refused before anything runs),
3. runs it against ground-truth GRPO on the three toy presets as a small study, and
4. ends with the verdict table and whether the card's prediction came true per alignment regime.

Time (`size = "full"`): 18 training cells of 50 steps and the three presets' builds (about 4 min each on one core;
skipped when `$STUDYKIT_CACHE` already holds them, e.g. after the default study): an estimate of 10 to 15 minutes
on 2 free cores. Runs go to the MLflow store at `uri` (experiment `your_claim`), the report to
`reports/your_claim/`. The same study from a terminal, once this notebook wrote its file:
`PYTHONPATH=examples/my_claim studykit study outputs/your_claim/your_claim.yaml`."""

YOUR_CLAIM = [
    """# 1. The claim's code. A reward plug-in is reward(completions, problem, verify, rng, **options) -> one float per
# completion (README "Test your own claim"). It must be importable by this kernel (to check it) and by every cell's
# kernel (to run it): put its folder on PYTHONPATH, which the study's cells inherit (and --executor ray forwards to
# its tasks), or `pip install -e examples/my_claim`, which also registers the bare name `short_answer`.
import inspect
import sys
import studykit
from studykit.study.spec import ROOT
example = Path(example).resolve() if example else ROOT / "examples" / "my_claim"
if not (example / "my_claim" / "rewards.py").is_file():
    raise FileNotFoundError(f"example: no my_claim/rewards.py under {example}; expected the examples/my_claim folder "
                            "of a studykit checkout (set `example`)")
if str(example) not in sys.path:
    sys.path.insert(0, str(example))
others = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(example)]
os.environ["PYTHONPATH"] = os.pathsep.join([str(example), *others])  # first: the cells import this copy
import my_claim.rewards
print(inspect.getsource(my_claim.rewards))""",
    """# The reward on hand-written completions of one toy problem: studykit reports true correctness beside it.
import numpy as np
import pandas as pd
from studykit import tasks
from studykit.scoring.plugins import reward
problem = tasks.get("toy").load("test")[0]
states = np.cumsum(problem.meta["digits"]).tolist()
texts = [f"<think> </think> <answer> {problem.answer} </answer>",  # right, no reasoning: short
         f"<think> sum {' '.join(map(str, states))} </think> <answer> {problem.answer} </answer>",  # right, reasoned
         f"<think> sum {' '.join(map(str, states))} 1 2 3 </think> <answer> {problem.answer} </answer>",  # right, long
         f"<think> </think> <answer> {int(problem.answer) + 1} </answer>"]  # wrong
res = reward("my_claim.rewards:short_answer", max_chars=max_chars)(texts, problem, rng=np.random.default_rng(0))
print(problem.prompt, "->", problem.answer)
pd.DataFrame({"completion": texts, "chars": [len(t) for t in texts], "reward": res.rewards, "correct": res.correct})""",
    """# 2. The claim's card and the study: ground truth and the claim on each toy preset, a few seeds and steps.
import yaml
from studykit.config.schema import deep_merge, load_yaml
SIZES = {
    "full": {"name": "your_claim", "base": "params/toy/base.yaml", "seeds": [0, 1, 2],
             "models": ["toy:strong", "toy:weak-method", "toy:weak-skill"],
             "run": {"train": {"steps": 50}, "eval": {"every": 0}}},  # evaluated at steps 0 and 50
    "tiny": {"name": "your_claim_tiny", "base": "params/toy/smoke_base.yaml", "seeds": [0],  # the smoke study's model
             "models": {"toy:custom": {"model": {"toy": {
                 "steps": 250, "warmup_steps": 10, "batch_size": 32, "lr": 0.01, "hidden_size": 32,
                 "intermediate_size": 64, "num_heads": 2, "sum_share": 0.6, "count_share": 0.2, "max_share": 0.2}}}},
             "run": {"train": {"steps": 2}}},
}
if size not in SIZES:
    raise ValueError(f"size: got {size!r}; expected one of {', '.join(SIZES)}")
chosen = SIZES[size]
work = Path("outputs") / chosen["name"]
work.mkdir(parents=True, exist_ok=True)
base = work / "base.yaml"  # the toy run defaults with this notebook's steps
base.write_text(yaml.safe_dump(deep_merge(load_yaml(ROOT / chosen["base"]), chosen["run"]), sort_keys=False))
card = {"text": f"A reward that pays only right answers of at most {max_chars} characters works as well as ground "
                "truth.", "source": "examples/my_claim (studykit's worked example)", "predicts": predicts}
study = {"name": chosen["name"], "base": base.name,
         "grid": {"models": chosen["models"], "tasks": ["toy"], "seeds": chosen["seeds"]},
         "conditions": {
             "ground_truth": {"rq": "rq1"},
             "short": {"rq": "rq1", "claim": "short_answer", "card": card, "overrides": {
                 "reward": {"name": "my_claim.rewards:short_answer", "options": {"max_chars": max_chars}}}}},
         "compare": {"holds": 0.7, "partial": 0.3, "min_effect": 0.02}}  # params/studies/toy.yaml's thresholds
study_path = work / f"{chosen['name']}.yaml"
study_path.write_text(yaml.safe_dump(study, sort_keys=False))
print(study_path.read_text())""",
    """# Check it: what `studykit params check` does with a study file. Every cell is validated, each plug-in imported
# and checked against its interface (signature, options); its identity (import path, version, source hash) joins
# the config hash. Nothing runs and nothing is written to MLflow.
from studykit.cli.commands import main as studykit_cli
from studykit.study import expand
assert studykit_cli(["params", "check", str(study_path)]) == 0
cells = expand(study_path)
pd.DataFrame([{"cell": c.name, "reward": c.config.reward.name, "plug-in": c.config.plugins().get("reward", ""),
               "config_hash": c.config.config_hash()} for c in cells])""",
    """# A bad plug-in is refused by name before anything runs: an option the reward's Options model forbids, and a
# path to an attribute the module does not define.
from studykit.config.schema import ConfigError, validate
for bad in ({"reward": {"name": "my_claim.rewards:short_answer", "options": {"max_chars": 0}}},
            {"reward": {"name": "my_claim.rewards:long_answer"}}):
    try:
        validate(bad)
    except ConfigError as err:
        print("refused:", err, "\\n")
    else:
        raise AssertionError(f"accepted a bad plug-in: {bad}")""",
    """# 3. Run it: every cell as a papermill notebook (notebooks/01_reward_signal.ipynb), `workers` at a time, finished
# cells skipped on a rerun, then the compare step (reports/<study>/). On a terminal, `studykit study` shows progress.
from studykit.study import format_summary, run_study
summary = run_study(study_path, workers=workers, uri=uri, progress=False)
print(format_summary(summary).split("\\n")[0], *(f"{o.name}: {o.status}" for o in summary.outcomes), sep="\\n  ")
if summary.exit_code != 0:
    raise RuntimeError(f"the study ended with exit code {summary.exit_code}: see {work / 'failed.json'}")""",
    """# 4. The verdict table: each claim row is the claim's gain in pass@1 as a ratio of ground truth's on the same
# model and seeds, with its interval; the card's section says whether the prediction came true per regime.
import json
from IPython.display import Markdown, display
report = Path("reports") / chosen["name"]
display(Markdown((report / "verdicts.md").read_text()))""",
    """# The card's prediction, row by row (verdicts.json `claims`): came true, did not, or cannot tell (an uncertain
# or n/a verdict). A regime is the run's step-0 alignment label (strong / weak pass@k).
checks = pd.DataFrame([c for c in json.loads((report / "verdicts.json").read_text())["claims"]
                       if c["claim"] == "short_answer"])
said = checks["outcome"].value_counts().items() if not checks.empty else []
print(f"prediction {predicts!r}:", ", ".join(f"{k} {v}" for k, v in said) or "nothing to check")
checks""",
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
        "20_your_claim.ipynb": _notebook([
            new_markdown_cell(YOUR_CLAIM_INTRO), new_code_cell(THREADS),
            new_code_cell(YOUR_CLAIM_PARAMS, metadata={"tags": ["parameters"]}),
            *[new_code_cell(src) for src in YOUR_CLAIM]]),
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
