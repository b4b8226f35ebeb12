"""`studykit import verl RUN_ID --dir DIR`: a finished verl run's validation in studykit's names.

The launch script's epilogue runs it after verl exits (choice: an explicit import step, so a verl run that crashed
can be imported, or re-imported, by hand). It does two things:

1. Renames verl's validation metrics in the run (`map_val_metric`): verl logs `val-core/<data_source>/acc/mean@N`
   (MLflow spelling `mean_at_N`; verl 0.9.1 trainer/ppo/v1/trainer_base.py `_val_metrics_update`), which is
   studykit's `eval/<set>/avg_at_<N>`; `acc/best@k/mean` is verl's bootstrap estimate of best-of-k, copied as
   `eval/<set>/verl_best_at_<k>` (NOT studykit's unbiased pass@k); `format/mean@N` is `eval/<set>/format_rate`.
2. Rescores verl's validation generations (`trainer.validation_data_dir`, one `<step>.jsonl` per validation) with
   studykit's own evaluation (`studykit.engine.evaluation.evaluate_set` over the recorded completions): `eval/<set>/pass_at_<k>`
   (unbiased), `avg_at_<n>`, `maj_at_<n>`, `format_rate`, the task's diagnostics, the per-problem
   `eval_counts/<set>/step_<step>.json` the verdict table bootstraps over, and the step-0 `alignment` tag. These
   replace step 1's copies where both exist (the same definitions; each step is logged once, and a value that
   differs from verl's is listed in the tag `verl_import_mismatch`).

Then the run is ended with `--status` (the launch script passes FINISHED or FAILED from verl's exit code), so
`studykit report` counts it once its eval metrics are in; FINISHED with no metric imported ends it FAILED instead,
with the reason. Only the run the export folder's manifest names is imported into.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from studykit.engine.evaluation import label_for
from studykit.config.schema import RunConfig, validate
from studykit.engine.evaluation import counts_artifact, evaluate_set, metric_key
from studykit.policy.sampling.base import Group
from ..tasks import Problem
from ..tasks import get as get_task
from .verl_export import MANIFEST, VALIDATION_DIR

_VAL_RE = re.compile(r"^val-(?:core|aux)/(?P<src>.+)/(?P<var>acc|format)/(?P<stat>mean|best)_at_(?P<n>\d+)(?P<rest>/mean)?$")
_STEP_FILE = re.compile(r"^(\d+)\.jsonl$")


def map_val_metric(name: str, sources: dict[str, str]) -> str | None:
    """studykit's name for one of verl's (MLflow-sanitised) validation metric names, or None when it has none.
    `sources` maps eval-set label -> data_source as in the export's manifest."""
    m = _VAL_RE.match(name.replace("@", "_at_"))
    if not m:
        return None
    label = next((lab for lab, src in sources.items() if src == m["src"]), None)
    if label is None:
        return None
    if m["var"] == "acc" and m["stat"] == "mean" and not m["rest"]:
        return metric_key(label, "avg", int(m["n"]))
    if m["var"] == "acc" and m["stat"] == "best" and m["rest"]:
        return f"eval/{label}/verl_best_at_{m['n']}"
    if m["var"] == "format" and m["stat"] == "mean" and not m["rest"]:
        return metric_key(label, "format_rate")
    return None


class _Replay:
    """A sampler that hands back recorded completions, in the order of the prompts it is given."""

    def __init__(self, groups: list[list[str]]):
        self.groups = groups

    def generate(self, prompts, n, **_):
        if len(prompts) != len(self.groups):
            raise ValueError(f"replay: {len(prompts)} prompts for {len(self.groups)} recorded groups")
        return [Group(p, [], list(texts)) for p, texts in zip(prompts, self.groups)]


@dataclass
class Imported:
    run_id: str
    renamed: dict[str, str] = field(default_factory=dict)
    steps: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    alignment: str | None = None
    mismatches: list[str] = field(default_factory=list)  # verl's value of a name differs from studykit's rescoring
    status: str | None = None  # how the run was ended (None: left as it was)
    reason: str | None = None  # why it ended other than asked


def read_dump(path: Path) -> dict[str, dict[str, list[str]]]:
    """eval-set label -> problem id -> completions, from one verl validation dump (JSON lines)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if "studykit_set" not in rec or "studykit_problem_id" not in rec:
            raise ValueError(f"{path}:{lineno}: no studykit_set / studykit_problem_id: the run did not use "
                             "studykit.integrations.verl.compute_score")
        out[rec["studykit_set"]][str(rec["studykit_problem_id"])].append(str(rec.get("output", "")))
    return out


def _val_problems(out_dir: Path) -> dict[str, list[Problem]]:
    import pyarrow.parquet as pq

    sets: dict[str, list[Problem]] = defaultdict(list)
    for rec in pq.read_table(out_dir / "val.parquet").to_pylist():
        info = rec["extra_info"]
        meta = json.loads(info["meta"])
        sets[info["split"]].append(Problem(info["problem_id"], info["question"], rec["reward_model"]["ground_truth"],
                                           meta))
    return sets


def rescore(cfg: RunConfig, step_groups: dict[str, dict[str, list[str]]], problems: dict[str, list[Problem]], step: int):
    """EvalResults of one validation step, scored by studykit's evaluation over the recorded completions."""
    main = get_task(cfg.data.task, **cfg.data.task_options)
    results = []
    for es in cfg.eval.sets:
        probs, recorded = problems.get(es.label, []), step_groups.get(es.label, {})
        missing = [p.id for p in probs if len(recorded.get(p.id, [])) != cfg.eval.n_samples]
        if missing:
            raise ValueError(f"validation step {step}, set {es.label!r}: {len(missing)} problems without "
                             f"{cfg.eval.n_samples} completions (first: {missing[0]!r})")
        task = main if es.task == cfg.data.task else get_task(es.task)
        tmpl = cfg.data.template if es.task == cfg.data.task and cfg.data.template else task.template
        results.append(evaluate_set(_Replay([recorded[p.id] for p in probs]), probs, es.label, task=task,
                                    template=tmpl, tokenizer=None, n=cfg.eval.n_samples, ks=cfg.eval.ks,
                                    temperature=cfg.eval.temperature, max_new_tokens=1, seed=0))
    return results


def import_run(run_id: str, out_dir: str | Path, uri: str | None = None, status: str | None = None) -> Imported:
    """Rename verl's validation metrics and add studykit's eval metrics to `run_id` (see the module docstring)."""
    from mlflow.entities import Metric

    from studykit.tracking import experiment as tracking

    out = Path(out_dir)
    manifest = _manifest(out)
    if manifest.get("run_id") != run_id:  # another run of the config (a studykit one, say) is not verl's to end
        raise ValueError(f"run {run_id} is not the run of this export: {out / MANIFEST} names "
                         + (f"run {manifest['run_id']}" if manifest.get("run_id") else "none (exported with --no-run)"))
    cfg = validate(manifest["config"], str(out / MANIFEST))
    mlc = tracking.client(uri or manifest.get("tracking_uri"))
    run = _get_run(mlc, run_id, uri or manifest.get("tracking_uri"))
    if run.data.tags.get("config_hash") != cfg.config_hash():
        raise ValueError(f"run {run_id}: config_hash {run.data.tags.get('config_hash')!r} is not the export's "
                         f"{cfg.config_hash()!r} ({out / MANIFEST})")
    done = Imported(run_id)
    dumps = sorted((int(m.group(1)), p) for p in (out / VALIDATION_DIR).glob("*.jsonl")
                   if (m := _STEP_FILE.match(p.name)))
    verl_values: dict[tuple[str, int], float] = {}
    for key in list(run.data.metrics):
        new = map_val_metric(key, manifest["eval_sets"])
        if not new:
            continue
        hist = mlc.get_metric_history(run_id, key)
        verl_values |= {(new, m.step): m.value for m in hist}
        if dumps and "/verl_best_at_" not in new:
            continue  # the rescoring below logs this name, by the same definition: each step once
        mlc.log_batch(run_id, metrics=[Metric(new, m.value, m.timestamp, m.step) for m in hist])
        done.renamed[key] = new
    problems = _val_problems(out) if dumps else {}
    for step, path in dumps:
        values: dict[str, float] = {}
        for res in rescore(cfg, read_dump(path), problems, step):
            values |= res.metrics
            mlc.log_dict(run_id, res.counts_record(step), counts_artifact(res.label, step))
        now = int(time.time() * 1000)
        mlc.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])
        done.mismatches += [f"{k} step {step}: verl {verl_values[(k, step)]:.4f}, studykit {v:.4f}"
                            for k, v in values.items() if (k, step) in verl_values and abs(verl_values[(k, step)] - v) > 1e-6]
        done.steps.append(step)
        done.metrics = values
        if step == 0:
            label = cfg.eval.sets[0].label
            curve = {k: values[metric_key(label, "pass", k)] for k in cfg.eval.ks}
            done.alignment = label_for(cfg, curve) if any(k <= cfg.eval.alignment_k for k in curve) else "unmeasured"
            mlc.set_tag(run_id, "alignment", done.alignment)
    mlc.set_tag(run_id, "verl_imported", ",".join(map(str, done.steps)) or "no validation dumps")
    if done.mismatches:
        mlc.set_tag(run_id, "verl_import_mismatch", "; ".join(done.mismatches)[:5000])
    if status == "FINISHED" and not done.steps and not done.renamed:
        # FINISHED with nothing to count would make the study report the cell done with no evaluation
        status, done.reason = "FAILED", (f"verl import found no validation metrics in the run and no dumps under "
                                         f"{out / VALIDATION_DIR}: nothing to evaluate")
        mlc.set_tag(run_id, "status_reason", done.reason)
    if status:
        mlc.set_terminated(run_id, status)
    done.status = status
    return done


def _manifest(out: Path) -> dict:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"--dir {out}: no {MANIFEST}; name the folder `studykit export verl --out` wrote") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{out / MANIFEST}: not a readable export manifest ({err})") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise ValueError(f"{out / MANIFEST}: not an export manifest (no config)")
    return manifest


def _get_run(mlc, run_id: str, uri: str | None):
    from mlflow.exceptions import MlflowException

    try:
        return mlc.get_run(run_id)
    except MlflowException as err:
        raise ValueError(f"run {run_id} is not in the tracking store {uri or '(default)'}: {err.message}") from None
