"""The verdict table: does each claim of arXiv 2508.21188 hold on each model x task cell, and how sure are we?

Pure (no MLflow): `verdict_table(runs, hist, counts, thresholds)` takes the selected runs (`studykit.analysis.runs`), their
metric histories and their per-problem correct counts, and returns one row per claim x model x task; `records` and
`markdown` are its verdicts.json and verdicts.md forms. `studykit.analysis.report` reads the runs and writes the report.

The rule (thresholds from `studykit.config.schema.CompareSpec`: holds 0.7, partial 0.3, min_effect 0.02):

- delta of a run = final-step pass@1 minus step-0 pass@1 on the run's primary eval set, per problem from the counts
  (`eval_counts/<set>/step_<step>.json`), so the mean over problems is the logged pass@1 change.
- A claim is compared with ground-truth GRPO on the same model and task, seed by seed: claim seed s with gt seed s
  (an ablation `<cond>@<abl>` with `ground_truth@<abl>` when the study has it, else with plain ground truth).
  Claim seeds without a gt partner are left out of the comparison and named in `note`.
- ratio = mean claim delta / mean gt delta over the paired seeds, with a 95% interval [ratio_lo, ratio_hi]: a
  problem bootstrap (the same problem indices for claim and gt) plus a seed layer with a Student t on S - 1 degrees
  of freedom (`metrics.paired_ratio_interval`, `metrics.seed_problem_bootstrap`). `n_seeds` is the number of paired
  seeds a row rests on; with one there is no interval and the verdict is `uncertain (1 seed)`.
- `n/a (gt flat)`, with no ratio, when ground truth did not gain significantly: its own delta interval reaches 0, or
  its mean delta is below `min_effect`. Otherwise `holds` when ratio_lo >= holds, `partial` when partial <= ratio_lo
  and ratio_hi < holds, `fails` when ratio_hi < partial, and `uncertain` when the interval straddles a threshold.
  Runs that logged no per-problem counts (older code) give no interval: their claims are `uncertain` (noted).
  One paired seed gives no interval either (no seed variance to estimate): `uncertain (1 seed)`.
- `provenance` (studykit.tracking.provenance): `same` when the row's runs (its seeds and their gt partners) share one
  `code_version` and one `base_weights` tag; `mixed` when either differs: the numbers stay, the verdict becomes
  `n/a (mixed provenance)`; `unknown` when a run lacks the tags (older stores): the verdict stays, a note says so.
- `colour`: the paper's three-way colour of the cell (`strong, clean`, `strong, contaminated`, `weak, clean` ...),
  read from the study's alignment run of the same model and task (its `alignment` tag: strength by pass@k,
  contamination by the probe, studykit.probes.alignment); empty when that run has no probe.
- Collapse (studykit.analysis.collapse): every row reports the peak of its mean pass@1 curve after step 0, the
  final value and the drop between them with a t interval over its seeds; `collapse` is true when that interval
  excludes 0 and the drop is at least 0.05 (a note then says so). The verdict still reads the final value, never
  the peak: a claim whose curve rose and fell is judged by where it ended (SRT, arXiv 2505.21444).
- Every row also reports the change in pass@k at the largest logged k (`k_max`): the RQ3 claims (negative / positive
  samples, W-REINFORCE) are about the whole pass@k spectrum, not only pass@1.
- Evaluation-only power-sampling cells (`eval.sampler: power`, train.steps 0) log the plain evaluation of the base
  model at step 0 and the power-sampling one at step 1 (studykit.engine.evaluation.POWER_STEP), so their delta is
  power's pass@1 over plain sampling's on the same problems, judged against ground truth's gain by the same rule;
  `token_cost_multiple` is the mean over the row's runs of their logged tokens generated per answer over plain
  sampling's (`eval/<set>/token_cost_multiple`), NaN for other rows.

Departure: the paper judges claims by eye from the curves of one seed; the ratio rule, the seed pairing and the
bootstrap intervals are studykit's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from studykit.scoring import metrics
from studykit.tracking import provenance
from studykit.config.schema import CompareSpec
from studykit.analysis import collapse
from studykit.analysis.runs import Counts, pass1_key, passmax_key, primary_set

CLAIM_RQS = ("rq1", "rq2", "rq3", "ablation")
ONE_SEED = "uncertain (1 seed)"  # a verdict word: starts with `uncertain`, so counted with the uncertain ones
RECORD_FIELDS = (
    "claim", "model", "task", "alignment", "colour", "seeds", "n_seeds", "base_pass1", "delta_pass1_per_seed",
    "delta_pass1", "delta_lo", "delta_hi", "gt_delta_pass1_per_seed", "gt_delta_pass1", "gt_delta_lo", "gt_delta_hi",
    "ratio", "ratio_lo", "ratio_hi", "verdict", "provenance", "k_max", "delta_pass_at_kmax_per_seed", "delta_pass_at_kmax",
    "delta_pass_at_kmax_lo", "delta_pass_at_kmax_hi", "peak_delta_pass1", "peak_step", *collapse.FIELDS,
    "token_cost_multiple", "note")
DIAGNOSTICS = ("train/clip_frac", "train/format_rate", "train/method_share/sum", "train/method_share/count",
               "train/method_share/max", "train/method_share/recall", "train/method_share/other",
               "train/no_variance_run")
NO_VARIANCE = "metrics.train/no_variance_run"  # the trainer's whole-run flag: no group ever had reward variance
_COLOUR_RE = re.compile(r"^(strong|weak), (clean|contaminated)\b")
NAN = math.nan


def thresholds_of(thresholds: Any) -> CompareSpec:
    """A CompareSpec from a CompareSpec, a mapping or None (the defaults); a bad key or value is a ValueError."""
    if isinstance(thresholds, CompareSpec):
        return thresholds
    try:
        return CompareSpec.model_validate(thresholds or {})
    except ValidationError as err:
        raise ValueError(f"thresholds: expected keys holds, partial, min_effect (numbers >= 0): {err}") from None


def judge(ratio_lo: float, ratio_hi: float, th: CompareSpec) -> str:
    """holds / partial / fails when the whole ratio interval is on one side of the thresholds, else uncertain."""
    if math.isnan(ratio_lo) or math.isnan(ratio_hi):
        return "uncertain"
    if ratio_lo >= th.holds:
        return "holds"
    if ratio_hi < th.partial:
        return "fails"
    if ratio_lo >= th.partial and ratio_hi < th.holds:
        return "partial"
    return "uncertain"


def gt_gained(gt_mean: float, gt_lo: float, th: CompareSpec) -> bool:
    """Ground truth gained significantly: mean delta >= min_effect and its interval above 0 (NaN lo: not known)."""
    return gt_mean >= th.min_effect and gt_mean > 0 and (math.isnan(gt_lo) or gt_lo > 0)


# ---------------------------------------------------------------------------------------------- per-run evidence


@dataclass
class Evidence:
    """What one run contributes: its pass@1 curve, its largest-k curve and its first/last per-problem counts."""

    seed: Any
    run: pd.Series
    curve: pd.Series  # pass@1 by step (may be empty)
    k_max: int | None
    kmax_curve: pd.Series
    pre: Counts | None = None
    post: Counts | None = None

    @property
    def has_counts(self) -> bool:
        return self.pre is not None and self.post is not None and self.pre.step < self.post.step

    def delta(self) -> float:
        if self.has_counts:
            return float(self.post.correct.mean() / self.post.n - self.pre.correct.mean() / self.pre.n)
        return float(self.curve.iloc[-1] - self.curve.iloc[0]) if len(self.curve) else NAN

    def kmax_delta(self, k: int) -> float:
        if self.has_counts and k <= min(self.pre.n, self.post.n):
            post = metrics.per_problem_pass_at_k(self.post.correct, self.post.n, k).mean()
            return float(post - metrics.per_problem_pass_at_k(self.pre.correct, self.pre.n, k).mean())
        c = self.kmax_curve
        return float(c.iloc[-1] - c.iloc[0]) if len(c) and self.k_max == k else NAN

    def per_problem(self, ids: list[str], k: int = 1) -> np.ndarray:
        """Per-problem delta of pass@k on `ids` (each present in both counts)."""
        out = []
        for c in (self.pre, self.post):
            pos = {pid: i for i, pid in enumerate(c.problem_ids)}
            vals = metrics.per_problem_pass_at_k(c.correct, c.n, k) if k > 1 else c.correct / c.n
            out.append(np.asarray([vals[pos[i]] for i in ids], dtype=np.float64))
        return out[1] - out[0]


def _seed(value: Any) -> Any:
    text = str(value)
    return int(text) if text.lstrip("-").isdigit() else text


def _seeds(seeds) -> list[Any]:
    """Seeds in order: numbers numerically, then names."""
    return sorted(seeds, key=lambda s: (1, 0, s) if isinstance(s, str) else (0, s, ""))


def _series(hist: pd.DataFrame, run_id: str, key: str | None) -> pd.Series:
    if key is None or hist.empty:
        return pd.Series(dtype=float)
    h = hist[(hist["run_id"] == run_id) & (hist["key"] == key)]
    return h.groupby("step")["value"].last().sort_index()


def _evidence(run: pd.Series, hist: pd.DataFrame, counts: dict[str, dict[int, Counts]]) -> Evidence:
    km = passmax_key(run)
    steps = counts.get(run["run_id"]) or {}
    pre, post = (steps[min(steps)], steps[max(steps)]) if steps else (None, None)
    return Evidence(_seed(run["seed"]), run, _series(hist, run["run_id"], pass1_key(run)), km[0] if km else None,
                    _series(hist, run["run_id"], km[1] if km else None), pre, post)


def label(run: pd.Series) -> str:
    """Claim label of a run: its claim, or `<condition>` (e.g. random@noclip) for ablation runs."""
    return str(run["condition"] if run["rq"] == "ablation" and run.get("condition") else run["claim"])


# ---------------------------------------------------------------------------------------------- one row


@dataclass
class _Row:
    claim: str
    model: str
    task: str
    runs: dict[Any, Evidence]  # seed -> evidence
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _common_ids(evs: list[Evidence]) -> list[str]:
    ids = list(evs[0].pre.problem_ids)
    keep = set(ids)
    for ev in evs:
        keep &= set(ev.pre.problem_ids) & set(ev.post.problem_ids)
    return [i for i in ids if i in keep]


def _describe(row: _Row, seeds: list[Any], boot: dict[str, Any]) -> dict[str, Any]:
    """Seed-level numbers of a row over `seeds`: base, deltas, peak, pass@k_max change, own delta interval."""
    evs = [row.runs[s] for s in seeds]
    curves = [e.curve for e in evs if len(e.curve)]
    out: dict[str, Any] = {"seeds": list(seeds), "n_seeds": len(seeds),
                           "delta_pass1_per_seed": [e.delta() for e in evs]}
    out["delta_pass1"] = float(np.mean(out["delta_pass1_per_seed"]))
    bases = [float(c.iloc[0]) for c in curves] or [float(e.pre.correct.mean() / e.pre.n) for e in evs if e.pre]
    out["base_pass1"] = float(np.mean(bases)) if bases else NAN
    fall = collapse.collapse(curves)  # peak after step 0, final, drop with its t interval over seeds
    out.update(fall.fields(), peak_step=fall.peak_step, peak_delta_pass1=fall.peak_pass1 - out["base_pass1"],
               collapse_note=collapse.note(fall))  # the note is read into `note`, not a column of its own
    ks = [e.k_max for e in evs if e.k_max]
    k = min(ks) if ks else None
    out["k_max"] = k
    out["delta_pass_at_kmax_per_seed"] = [e.kmax_delta(k) for e in evs] if k else []
    out["delta_pass_at_kmax"] = float(np.mean(out["delta_pass_at_kmax_per_seed"])) if k else NAN
    out["delta_lo"] = out["delta_hi"] = out["delta_pass_at_kmax_lo"] = out["delta_pass_at_kmax_hi"] = NAN
    if all(e.has_counts for e in evs) and (ids := _common_ids(evs)):
        _, out["delta_lo"], out["delta_hi"] = metrics.mean_interval(np.stack([e.per_problem(ids) for e in evs]),
                                                                    **boot)
        if k and k <= min(min(e.pre.n, e.post.n) for e in evs):
            table = np.stack([e.per_problem(ids, k) for e in evs])
            _, out["delta_pass_at_kmax_lo"], out["delta_pass_at_kmax_hi"] = metrics.mean_interval(table, **boot)
    return out


def _compare(row: _Row, gt: _Row | None, th: CompareSpec, boot: dict[str, Any]) -> None:
    nan_gt = {"gt_delta_pass1_per_seed": [], "gt_delta_pass1": NAN, "gt_delta_lo": NAN, "gt_delta_hi": NAN,
              "ratio": NAN, "ratio_lo": NAN, "ratio_hi": NAN}
    paired = _seeds(set(row.runs) & set(gt.runs)) if gt else []
    if not paired:
        row.values.update(_describe(row, _seeds(row.runs), boot), **nan_gt, verdict="n/a (no gt)")
        row.notes.append(f"ground truth has no run with seeds {_seeds(row.runs)}" if gt else
                         "no ground-truth run of the same model and task")
        return
    if unpaired := _seeds(set(row.runs) - set(paired)):
        row.notes.append(f"seeds {unpaired} have no ground-truth partner and are left out")
    row.values.update(_describe(row, paired, boot))
    g = _describe(gt, paired, boot)
    row.values.update(nan_gt, gt_delta_pass1_per_seed=g["delta_pass1_per_seed"], gt_delta_pass1=g["delta_pass1"])
    evs = [row.runs[s] for s in paired] + [gt.runs[s] for s in paired]
    interval = None
    if all(e.has_counts for e in evs) and (ids := _common_ids(evs)):
        if len(ids) < max(len(e.post.problem_ids) for e in evs):
            row.notes.append(f"compared on the {len(ids)} eval problems that all these runs share")
        claim_t = np.stack([row.runs[s].per_problem(ids) for s in paired])
        if _copies(claim_t, [row.runs[s] for s in paired]):
            row.notes.append(f"IDENTICAL SEEDS: seeds {paired} gave the same per-problem results, so they may be one "
                             "run repeated (a seed the claim's runs ignore); the interval then holds the problems' "
                             "spread only and the verdict rests on fewer independent seeds than it lists")
        interval = metrics.paired_ratio_interval(claim_t, np.stack([gt.runs[s].per_problem(ids) for s in paired]),
                                                 **boot)
        row.values.update(gt_delta_lo=interval.gt[1], gt_delta_hi=interval.gt[2])
    if not gt_gained(row.values["gt_delta_pass1"], row.values["gt_delta_lo"], th):
        row.values["verdict"] = "n/a (gt flat)"
        return
    if interval is None:
        row.values.update(ratio=row.values["delta_pass1"] / row.values["gt_delta_pass1"], verdict="uncertain")
        row.notes.append("no per-problem counts logged (runs from older code): no interval")
        return
    if len(paired) < 2:
        row.values.update(ratio=interval.ratio, verdict=ONE_SEED)
        row.notes.append("one paired seed: no interval, since one seed gives no estimate of the seed-to-seed variance")
        return
    row.values.update(ratio=interval.ratio, ratio_lo=interval.lo, ratio_hi=interval.hi,
                      verdict=judge(interval.lo, interval.hi, th))


def _copies(per_problem: np.ndarray, evs: list[Evidence]) -> bool:
    """Whether two or more seeds gave the same per-problem results although some final count is strictly between 0
    and n (sampled, so independent seeds would almost surely differ); results all at 0 or n agree by saturation."""
    sampled = any(((e.post.correct > 0) & (e.post.correct < e.post.n)).any() for e in evs)
    return len(evs) > 1 and sampled and all(np.array_equal(per_problem[0], t) for t in per_problem[1:])


def _provenance(row: _Row, gt: _Row | None) -> None:
    """Do the runs the row rests on (its seeds and their ground-truth partners) share one code version and one set
    of base weights? A mixed row keeps its numbers but gets no verdict word: its ratio would measure the change of
    code or weights as much as the claim (rerun the stale cells: `studykit study --rerun-stale`)."""
    seeds = row.values.get("seeds") or []
    used = [(f"{row.claim} s{s}", row.runs[s].run) for s in seeds if s in row.runs]
    used += [(f"{gt.claim} s{s}", gt.runs[s].run) for s in seeds if gt is not None and s in gt.runs]
    found = provenance.check(used)
    row.values["provenance"] = found.state
    if found.state != "same":
        row.notes.append(found.detail)
    if found.state == "mixed" and row.values.get("verdict") not in ("baseline",) \
            and not str(row.values.get("verdict")).startswith("n/a"):
        row.values["verdict"] = "n/a (mixed provenance)"


def _baseline(row: _Row, th: CompareSpec, boot: dict[str, Any]) -> None:
    row.values.update(_describe(row, _seeds(row.runs), boot), gt_delta_pass1_per_seed=[],
                      gt_delta_pass1=NAN, gt_delta_lo=NAN, gt_delta_hi=NAN, ratio=NAN, ratio_lo=NAN, ratio_hi=NAN,
                      verdict="baseline")
    if not gt_gained(row.values["delta_pass1"], row.values["delta_lo"], th):
        row.notes.append("ground truth did not gain significantly: the claims of this cell are n/a")
    elif row.values["n_seeds"] < 2:
        row.notes.append("one seed: its gain has no interval (the claims of this cell are `uncertain (1 seed)`)")


def verdict_table(runs: pd.DataFrame, hist: pd.DataFrame, counts: dict[str, dict[int, Counts]] | None = None,
                  thresholds: Any = None, baseline: str = "ground_truth", n_boot: int = 2000, alpha: float = 0.05,
                  seed: int = 0) -> pd.DataFrame:
    """One row per claim x model x task (see the module docstring for the rule). `counts`: run_id -> step ->
    Counts of the run's primary eval set (`studykit.analysis.runs.load_counts`); without them no intervals."""
    th = thresholds_of(thresholds)
    boot = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    cols = [*RECORD_FIELDS, *DIAGNOSTICS]
    colours = cell_colours(runs)
    runs = runs[runs["rq"].isin(CLAIM_RQS)].copy()
    if runs.empty:
        return pd.DataFrame(columns=cols)
    runs["label"] = runs.apply(label, axis=1)
    rows: dict[tuple[str, str, str], _Row] = {}
    for (name, model, task), group in runs.groupby(["label", "model", "task"], sort=False):
        evs, dups = {}, []
        ordered = group.sort_values("start_time", kind="stable") if "start_time" in group else group
        for _, run in ordered.iterrows():
            ev = _evidence(run, hist, counts or {})
            if len(ev.curve) or ev.has_counts:
                if ev.seed in evs:  # two cells with one claim label (e.g. two conditions sharing `claim`)
                    dups.append(ev.seed)
                evs[ev.seed] = ev
        if evs:
            rows[(name, model, task)] = r = _Row(name, model, task, evs)
            r.values.update(alignment=_alignment(group), colour=colours.get((model, task)), **_diagnostics(group),
                            token_cost_multiple=_token_cost(group))
            if not math.isnan(r.values["token_cost_multiple"]):
                r.notes.append(f"power sampling generated {r.values['token_cost_multiple']:.1f}x the tokens per "
                               "answer of plain sampling (step 0 plain, step 1 power: the delta is power's gain)")
            if dups:
                r.notes.append(f"several cells share this label on seeds {_seeds(set(dups))}: the newest run is used")
            if flat := _seeds({s for s, ev in evs.items() if ev.run.get(NO_VARIANCE) == 1}):
                r.notes.append(f"NO REWARD VARIANCE on seeds {flat}: no group of the run had any, so its update "
                               "did nothing")
    for (name, model, task), row in rows.items():
        abl = name.partition("@")[2]
        own_base = f"{baseline}@{abl}" if abl else baseline
        if name == own_base:
            _baseline(row, th, boot)
            _provenance(row, None)
        else:
            gt = rows.get((own_base, model, task)) or rows.get((baseline, model, task))
            _compare(row, gt, th, boot)
            _provenance(row, gt)
        if row.values.get("collapse_note"):
            row.notes.append(row.values["collapse_note"])
        row.values["note"] = "; ".join(row.notes)
    order = list(dict.fromkeys(name for name, _, _ in rows))

    def key(item) -> tuple:
        name, model, task = item[0]
        base, _, abl = name.partition("@")
        return (model, task, bool(abl), abl, base != baseline, order.index(name))

    out = [{"claim": n, "model": m, "task": t, **row.values} for (n, m, t), row in sorted(rows.items(), key=key)]
    return pd.DataFrame(out, columns=cols)


def colour_of(tag: Any) -> str | None:
    """`strong, contaminated` from an alignment tag such as `strong, contaminated (pass@16=1.00; ...)`; None for a
    tag without the probe's half (`strong (pass@16=1.00)`, older runs)."""
    m = _COLOUR_RE.match(tag) if isinstance(tag, str) else None
    return f"{m[1]}, {m[2]}" if m else None


def cell_colours(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, task) -> colour, from the alignment runs among `runs` (the newest run wins)."""
    if "rq" not in runs or "alignment" not in runs:
        return {}
    align = runs[runs["rq"] == "alignment"]
    if "start_time" in align:
        align = align.sort_values("start_time", kind="stable")
    out = {}
    for _, run in align.iterrows():
        if colour := colour_of(run["alignment"]):
            out[(run["model"], run["task"])] = colour
    return out


def _alignment(group: pd.DataFrame) -> str | None:
    vals = [a for a in group["alignment"].dropna() if a and a != "unmeasured"]
    return vals[0] if vals else None


def _token_cost(group: pd.DataFrame) -> float:
    """Mean `eval/<primary set>/token_cost_multiple` of the group's runs that logged it (power sampling), else NaN."""
    values = []
    for _, run in group.iterrows():
        col = f"metrics.eval/{primary_set(run)}/token_cost_multiple"
        if col in run.index and pd.notna(run[col]):
            values.append(float(run[col]))
    return float(np.mean(values)) if values else NAN


def _diagnostics(group: pd.DataFrame) -> dict[str, float]:
    out = {}
    for k in DIAGNOSTICS:
        col = f"metrics.{k}"
        out[k] = float(group[col].mean()) if col in group and group[col].notna().any() else NAN
    return out
