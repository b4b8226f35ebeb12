"""The compare notebook's per-claim explanations: every claim of the default study has its text, every row its line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from studykit.analysis.claim_cards import shipped
from studykit.analysis.claim_notes import claim_text, explain_claims
from studykit.study.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def test_every_claim_of_the_default_study_is_described():
    spec = load_spec(ROOT / "params/studies/toy.yaml")
    assert set(spec.conditions) <= set(shipped())  # the shipped claims are claim cards like a user's
    assert "noclip" in claim_text("random@noclip") and claim_text("random@noclip").startswith(shipped()["random"].text)


def test_each_row_of_a_verdict_table_gets_one_line():
    records = json.loads((ROOT / "reports/toy/verdicts.json").read_text())["records"]
    table = pd.DataFrame(records)
    text = explain_claims(table)
    assert text.count("\n### ") == table["claim"].nunique()
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) == len(table)
    row = table[(table["claim"] == "random") & (table["model"] == "toy:strong")].iloc[0]
    assert any(line.startswith("- **random** on toy:strong") and row["verdict"] in line for line in lines)
    assert explain_claims(table.iloc[0:0]).startswith("No claim")
