"""The claim: "a reward that pays only SHORT correct answers works as well as ground truth"."""

from __future__ import annotations

from pydantic import BaseModel, Field

from studykit.scoring.plugins import extract_answer


class Options(BaseModel):
    """`reward.options` of short_answer; studykit validates them with this model before anything runs."""

    model_config = {"extra": "forbid"}
    max_chars: int = Field(200, ge=1)
    """A completion longer than this many characters is paid nothing, right or wrong."""


def short_answer(completions, problem, verify, rng, max_chars: int = 200):
    """1 for a completion whose extracted answer is correct and that has at most `max_chars` characters, else 0."""
    return [float(len(text) <= max_chars and verify(problem, extract_answer(text))) for text in completions]


short_answer.Options = Options
short_answer.per_completion = True  # each completion's reward ignores the rest of its group: verl may call it alone
