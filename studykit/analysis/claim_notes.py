"""What each claim of the study says, who made it, and what the verdict table found for it, in prose for the
compare notebook (`explain_claims(table)` -> markdown, one section per claim, one line per model x task row).

The claim texts are the claim cards (`studykit.analysis.claim_cards`: the shipped ones, or a study condition's own); the
finding per row is `studykit.analysis.verdict_text.explain` of that row. Pure: a verdict table in, markdown out.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from studykit.analysis.claim_cards import card_for
from studykit.analysis.verdict_text import explain
from studykit.config.schema import ClaimCard

PAPER = ("The paper (arXiv 2508.21188) reports that these shortcuts hold when the model is already strongly aligned "
         "with the task (high pass@k) and fail under weak alignment.")


def claim_text(claim: str, own: Mapping[str, ClaimCard] | None = None) -> str:
    """The claim's card as a sentence (text, source); an ablation `<claim>@<name>` is the claim under that
    ablation's overrides."""
    ablation = claim.partition("@")[2]
    card = card_for(claim, own)
    text = f"{card.text} ({card.source})" if card else "A claim with no card (give its condition a `card:`)."
    return f"{text} Ablation `{ablation}`: the same claim under the study's `{ablation}` overrides." if ablation else text


def explain_claims(table: pd.DataFrame, cards: Mapping[str, ClaimCard] | None = None) -> str:
    """Markdown: for each claim (in table order) its text, then one line per model x task with the verdict."""
    if table.empty:
        return "No claim has a FINISHED run yet.\n"
    parts = [PAPER, ""]
    for claim, rows in table.groupby("claim", sort=False):
        parts += [f"### {claim}", "", claim_text(str(claim), cards), ""]
        for _, row in rows.iterrows():
            parts.append(explain(row) if row["verdict"] != "baseline" else
                         f"- {row['model']} / {row['task']} ({row['alignment'] or 'alignment unmeasured'}): pass@1 "
                         f"moved {row['delta_pass1']:+.3f} (the baseline).")
        parts.append("")
    return "\n".join(parts)
