"""The verdict table's text forms: the rule in words (`rule_text`), the JSON records (`records`: NaN as null), the
markdown table with the claims that did not clearly reproduce, the provenance section and notes (`markdown`), and
one sentence per row (`explain`, used by `studykit.analysis.claim_notes`). The judging is
`studykit.analysis.verdicts`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from studykit.analysis import collapse
from studykit.analysis.verdicts import DIAGNOSTICS, RECORD_FIELDS, thresholds_of
from studykit.tracking import provenance

# ---------------------------------------------------------------------------------------------- text forms


def rule_text(thresholds: Any = None, n_boot: int = 2000, alpha: float = 0.05) -> str:
    th = thresholds_of(thresholds)
    pct = f"{100 * (1 - alpha):g}%"
    return (f"Rule: delta = final pass@1 - step-0 pass@1 on the primary eval set; ratio = mean claim delta / mean "
            f"ground-truth GRPO delta over the n_seeds seeds both have (same model and task, seed paired with seed), "
            f"with a {pct} interval [ratio_lo, ratio_hi] ({n_boot} replicates of a problem bootstrap, the same "
            f"problems for claim and ground truth, plus a seed layer: the per-seed deltas' spread times a Student t "
            f"with n_seeds - 1 degrees of freedom). **holds** if ratio_lo >= {th.holds}, **partial** if "
            f"{th.partial} <= ratio_lo and ratio_hi < {th.holds}, **fails** if ratio_hi < {th.partial}, "
            f"**uncertain** when the interval straddles a threshold, **uncertain (1 seed)** when one paired seed "
            f"gives no interval; **n/a (gt flat)** (no ratio) when ground truth "
            f"did not gain significantly (its delta interval reaches 0, or its mean delta < {th.min_effect}); "
            f"**n/a (mixed provenance)** when the row's runs differ in code version or base weights. "
            f"k_max: the largest logged k; delta_pass_at_kmax is the change of pass@k_max. collapse: pass@1's mean "
            f"curve peaked after step 0 at least {collapse.COLLAPSE_RISE} above step 0 and fell by at least "
            f"{collapse.COLLAPSE_DROP} by the final step, with the "
            f"drop's {pct} t interval over seeds above 0 (SRT, arXiv 2505.21444: self-rewarded RL improves, then "
            f"collapses); the verdict reads the final value, never the peak. Departure: the paper "
            f"judges by eye from one seed's curves; the ratio rule and the intervals are studykit's.")


def _clean(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return round(float(v), 4) if math.isfinite(float(v)) else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """verdicts.json records: exactly RECORD_FIELDS; NaN (not defined) and +-inf (unbounded) become null."""
    return [{k: _clean(row[k]) for k in RECORD_FIELDS} for _, row in table.iterrows()]


def _fmt(v: Any, signed: bool = False) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x, signed) for x in v) + "]"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:+.3f}" if signed else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


MD_COLUMNS = ("claim", "model", "task", "alignment", "colour", "seeds", "n_seeds", "base_pass1",
              "delta_pass1_per_seed", "delta_pass1", "delta_lo", "delta_hi", "ratio", "ratio_lo", "ratio_hi", "verdict",
              "provenance", "k_max", "delta_pass_at_kmax", "peak_delta_pass1", "peak_step", "collapse")


def _cell(row: pd.Series, column: str) -> str:
    """One markdown cell; `collapse` reads `collapsed -<drop> after <peak step>`, `no`, or '' (not measured)."""
    if column == "collapse":
        if row.get("collapse") is True or row.get("collapse") == 1:
            return f"collapsed -{row['drop_pass1']:.2f} after {row['peak_step']}"
        return "" if pd.isna(row.get("drop_lo")) else "no"
    return _fmt(row[column], "delta" in column and not column.endswith(("_lo", "_hi")))


def _explain(row: pd.Series) -> str:
    diag = ", ".join(f"{k.split('/', 1)[1]}={row[k]:.2f}" for k in DIAGNOSTICS
                     if k in row and not math.isnan(row[k]))
    kmax = (f"; pass@{row['k_max']} moved {_fmt(row['delta_pass_at_kmax'], True)}" if (row["k_max"] or 0) > 1 else "")
    ci = (f"95% interval [{_fmt(row['ratio_lo'])}, {_fmt(row['ratio_hi'])}]" if not pd.isna(row["ratio_lo"])
          else "no interval")
    colour = f", {row['colour']}" if row.get("colour") else ""
    return (f"- **{row['claim']}** on {row['model']} / {row['task']} ({row['alignment'] or 'alignment unmeasured'}"
            f"{colour})"
            f" {row['verdict']}: pass@1 moved {_fmt(row['delta_pass1'], True)} against ground truth's "
            f"{_fmt(row['gt_delta_pass1'], True)} on seeds {row['seeds']} (ratio {_fmt(row['ratio'])}, {ci}){kmax}; "
            f"diagnostics: "
            f"{diag or 'none logged'}.")


def explain(row: pd.Series) -> str:
    """One markdown line on a verdict row: the verdict, pass@1 against ground truth, the interval, diagnostics."""
    return _explain(row)


def markdown(table: pd.DataFrame, thresholds: Any = None, n_boot: int = 2000, alpha: float = 0.05) -> str:
    """The verdict table in markdown, the rule, the claims that did not clearly reproduce, and the notes."""
    lines = ["| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    lines += ["| " + " | ".join(_cell(row, c) for c in MD_COLUMNS) + " |" for _, row in table.iterrows()]
    body = "\n".join(lines) + "\n\n" + rule_text(thresholds, n_boot, alpha) + "\n"
    misses = [_explain(row) for _, row in table.iterrows()
              if row["verdict"] in ("fails", "partial") or row["verdict"].startswith("uncertain")]
    if misses:
        body += "\n### Claims that did not clearly reproduce\n\n" + "\n".join(misses) + "\n"
    body += provenance.section(table)
    notes = [f"- **{row['claim']}** on {row['model']} / {row['task']}: {row['note']}" for _, row in table.iterrows()
             if row["note"]]
    if notes:
        body += "\n### Notes\n\n" + "\n".join(notes) + "\n"
    return body
