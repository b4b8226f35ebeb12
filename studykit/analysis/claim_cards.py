"""Claim cards in the report: what each claim says, who made it, what it predicts, and whether the prediction came
true in each alignment regime of the study.

A card is `studykit.config.schema.ClaimCard` (text, source, predicts). The shipped claims' cards are
`studykit/data/claims/shipped.yaml`; a study condition's own `card:` wins over the shipped card of its claim's name,
and an ablation `<claim>@<name>` uses its claim's card. A row's regime is the first word of its colour
(`strong, clean`) or of its alignment tag (`strong (pass@16=1.00)`). The check, per row:

- `holds-when-strong`: holds on a strong row, does not hold (partial or fails) on a weak one;
- `holds-everywhere` / `fails-everywhere`: holds / fails on every row; `holds-when-weak`: the mirror of the first;
- `came true` when the verdict is the expected word, `did not` when it is the opposite, `cannot tell` when the
  verdict is uncertain or n/a; `none` predicts nothing (a contrast condition). Pure: a verdict table in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.resources import files

import pandas as pd
import yaml

from studykit.config.schema import ClaimCard

HOLDS, NOT_HOLDS = "holds", "does not hold"


@lru_cache(maxsize=1)
def shipped() -> dict[str, ClaimCard]:
    """The shipped claim cards, by claim name."""
    data = yaml.safe_load(files("studykit").joinpath("data/claims/shipped.yaml").read_text())
    return {name: ClaimCard.model_validate(card) for name, card in data.items()}


def card_for(claim: str, own: Mapping[str, ClaimCard] | None = None) -> ClaimCard | None:
    """The study's own card of `claim`, else the shipped card of its name (an ablation's: of its claim)."""
    own = own or {}
    base = claim.partition("@")[0]
    return own.get(claim) or own.get(base) or shipped().get(base)


def regime(row: Mapping) -> str | None:
    for key in ("colour", "alignment"):
        word = str(row.get(key) or "").split(",")[0].split(" ")[0]
        if word in ("strong", "weak"):
            return word
    return None


def expected(predicts: str, where: str | None) -> str | None:
    """The verdict a prediction expects in a regime (HOLDS / NOT_HOLDS), None when it says nothing there."""
    if predicts == "holds-everywhere":
        return HOLDS
    if predicts == "fails-everywhere":
        return NOT_HOLDS
    if predicts in ("holds-when-strong", "holds-when-weak") and where in ("strong", "weak"):
        return HOLDS if predicts == f"holds-when-{where}" else NOT_HOLDS
    return None


def outcome(verdict: str, expect: str | None) -> str | None:
    if expect is None:
        return None
    if verdict == "holds":
        return "came true" if expect == HOLDS else "did not"
    if verdict in ("fails", "partial"):
        return "came true" if expect == NOT_HOLDS else "did not"
    return "cannot tell"


def checks(table: pd.DataFrame, own: Mapping[str, ClaimCard] | None = None) -> list[dict]:
    """One record per claim row that has a card: claim, model, task, regime, predicts, verdict, outcome."""
    out = []
    for _, row in table.iterrows():
        if row["verdict"] == "baseline" or (card := card_for(str(row["claim"]), own)) is None:
            continue
        where = regime(row)
        out.append({"claim": row["claim"], "model": row["model"], "task": row["task"], "regime": where,
                    "predicts": card.predicts, "verdict": row["verdict"],
                    "outcome": outcome(str(row["verdict"]), expected(card.predicts, where))})
    return out


def markdown(table: pd.DataFrame, own: Mapping[str, ClaimCard] | None = None) -> str:
    """The claims section of verdicts.md: each card, then its prediction per regime (came true / did not / cannot
    tell, with the rows)."""
    records = checks(table, own)
    if not records:
        return ""
    lines = ["## Claim cards: did each prediction come true?", "",
             "| claim | says | source | predicts | strong | weak |", "| --- | --- | --- | --- | --- | --- |"]
    for claim in dict.fromkeys(r["claim"] for r in records):
        card = card_for(claim, own)
        mine = [r for r in records if r["claim"] == claim]
        cells = [_tally([r for r in mine if r["regime"] == where]) for where in ("strong", "weak")]
        lines.append(f"| {claim} | {card.text} | {card.source} | {card.predicts} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def _tally(rows: Iterable[dict]) -> str:
    rows = [r for r in rows if r["outcome"] is not None]
    if not rows:
        return ""
    words = ("came true", "did not", "cannot tell")
    return ", ".join(f"{w} {sum(r['outcome'] == w for r in rows)}" for w in words if any(r["outcome"] == w for r in rows))
