"""What each claim of the study says, who made it, and what the verdict table found for it, in prose for the
compare notebook (`explain_claims(table)` -> markdown, one section per claim, one line per model x task row).

The claim texts name the papers that made the claims (as `studykit.scoring.rewards` and `studykit.engine.grpo` cite them); the
finding per row is `studykit.analysis.verdict_text.explain` of that row. Pure: a verdict table in, markdown out.
"""

from __future__ import annotations

import pandas as pd

from studykit.analysis.verdict_text import explain

CLAIMS = {
    "ground_truth": "Standard GRPO on the verifier's reward: the reference every claim is measured against; the paper "
                    "finds it works under strong and weak alignment alike.",
    "random": "Spurious Rewards (Shao et al. 2025): a Bernoulli(0.5) reward that ignores the answer still improves "
              "the model.",
    "incorrect": "Spurious Rewards: paying only wrong answers still improves the model.",
    "format": "Spurious Rewards: paying only the `<think>...</think> <answer>...</answer>` format improves the model.",
    "majority_vote": "TTRL (Zuo et al. 2025): the group's most common answer as the label, no ground truth.",
    "self_certainty": "Entropy minimisation (Agarwal et al. 2025): the completion's own mean token log-prob as reward.",
    "one_shot": "1-shot RLVR (Wang et al. 2025): one training example, chosen by its historical variance, matches "
                "the full training set.",
    "nsr": "Negative samples (the paper's form): GRPO advantages kept only on samples with reward < 1.",
    "psr": "Positive samples (the paper's form): GRPO advantages kept only on samples with reward > 0.",
    "nsr_reinforce": "Zhu et al. 2025: -1 on every unrewarded sample, no baseline, matches full training.",
    "psr_reinforce": "Zhu et al. 2025: +1 on every rewarded sample, no baseline (their contrast to NSR).",
    "w_reinforce": "Zhu et al. 2025, W-REINFORCE: +lambda on rewarded, -1 on unrewarded samples (lambda = 0.1).",
}
PAPER = ("The paper (arXiv 2508.21188) reports that these shortcuts hold when the model is already strongly aligned "
         "with the task (high pass@k) and fail under weak alignment.")


def claim_text(claim: str) -> str:
    """The claim's sentence; an ablation `<claim>@<name>` is the claim under that ablation's overrides."""
    base, _, ablation = claim.partition("@")
    text = CLAIMS.get(base, "A claim this module has no description of (a condition of your own study).")
    return f"{text} Ablation `{ablation}`: the same claim under the study's `{ablation}` overrides." if ablation else text


def explain_claims(table: pd.DataFrame) -> str:
    """Markdown: for each claim (in table order) its text, then one line per model x task with the verdict."""
    if table.empty:
        return "No claim has a FINISHED run yet.\n"
    parts = [PAPER, ""]
    for claim, rows in table.groupby("claim", sort=False):
        parts += [f"### {claim}", "", claim_text(str(claim)), ""]
        for _, row in rows.iterrows():
            parts.append(explain(row) if row["verdict"] != "baseline" else
                         f"- {row['model']} / {row['task']} ({row['alignment'] or 'alignment unmeasured'}): pass@1 "
                         f"moved {row['delta_pass1']:+.3f} (the baseline).")
        parts.append("")
    return "\n".join(parts)
