"""Claim cards: a study condition's own card (a user's claim) and the shipped ones go through one door, and the
report says per alignment regime whether each prediction came true."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from studykit.analysis import claim_cards
from studykit.analysis.claim_notes import explain_claims
from studykit.config.schema import ClaimCard, ConfigError

ROOT = Path(__file__).resolve().parent.parent


def _row(claim, model, colour, verdict):
    return {"claim": claim, "model": model, "task": "toy", "colour": colour, "alignment": None, "verdict": verdict}


TABLE = pd.DataFrame([
    _row("ground_truth", "s", "strong, clean", "baseline"),
    _row("short_answer", "s", "strong, clean", "holds"),
    _row("short_answer", "w", "weak, clean", "holds"),  # predicted not to hold there
    _row("short_answer", "w2", "weak, clean", "uncertain"),
    _row("random", "s", "strong, clean", "fails"),
    _row("random", "w", "weak, clean", "partial"),
    _row("random@noclip", "w", "weak, clean", "fails"),
])
MINE = {"short_answer": ClaimCard(text="Paying only short answers works as well as ground truth.",
                                  source="our lab, 2026", predicts="holds-when-strong")}


def test_predictions_are_checked_per_row_and_regime():
    got = {(r["claim"], r["model"]): r["outcome"] for r in claim_cards.checks(TABLE, MINE)}
    assert got == {("short_answer", "s"): "came true", ("short_answer", "w"): "did not",
                   ("short_answer", "w2"): "cannot tell", ("random", "s"): "did not",
                   ("random", "w"): "came true", ("random@noclip", "w"): "came true"}


def test_the_report_section_tallies_each_regime():
    text = claim_cards.markdown(TABLE, MINE)
    line = next(x for x in text.splitlines() if x.startswith("| short_answer"))
    assert "our lab, 2026" in line and "holds-when-strong" in line
    assert line.rstrip(" |").endswith("did not 1, cannot tell 1") and "| came true 1 |" in line
    assert "Spurious Rewards" in next(x for x in text.splitlines() if x.startswith("| random |"))


def test_every_prediction_reads_the_regimes_as_it_says():
    e = claim_cards.expected
    assert (e("holds-when-strong", "strong"), e("holds-when-strong", "weak")) == ("holds", "does not hold")
    assert (e("holds-when-weak", "strong"), e("holds-when-weak", "weak")) == ("does not hold", "holds")
    assert e("holds-everywhere", None) == "holds" and e("fails-everywhere", "strong") == "does not hold"
    assert e("none", "strong") is None and e("holds-when-strong", None) is None
    assert claim_cards.outcome("n/a (gt flat)", "holds") == "cannot tell"


def test_a_study_condition_carries_its_own_card_and_a_bad_one_is_refused(tmp_path):
    from studykit.study import load_spec

    base = (ROOT / "params" / "toy" / "base.yaml").resolve()
    card = {"text": "Paying only short answers works.", "source": "our lab", "predicts": "holds-when-strong"}
    study = {"name": "mine", "base": str(base), "grid": {"models": ["toy:strong"]},
             "conditions": {"ground_truth": {"rq": "rq1"},
                            "short": {"rq": "rq1", "claim": "short_answer", "card": card,
                                      "overrides": {"reward": {"name": "format"}}}}}
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(study))
    assert load_spec(path).cards() == {"short_answer": ClaimCard(**card)}
    study["conditions"]["short"]["card"] = dict(card, predicts="holds-sometimes")
    path.write_text(json.dumps(study))
    with pytest.raises(ConfigError, match="predicts"):
        load_spec(path)


def test_the_compare_notes_use_the_studys_card():
    table = pd.DataFrame(json.loads((ROOT / "reports/toy/verdicts.json").read_text())["records"])
    mine = {"random": ClaimCard(text="Our reading of random rewards.", source="our lab, 2026", predicts="none")}
    assert "Our reading of random rewards. (our lab, 2026)" in explain_claims(table, mine)
    assert "Spurious Rewards" in explain_claims(table)  # the shipped card otherwise
    assert "give its condition a `card:`" in explain_claims(table.assign(claim="unknown_claim"))
