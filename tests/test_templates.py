"""Prompt templates: the paper's think/answer instruction, the boxed variant, raw, and chat templates."""

from __future__ import annotations

import pytest

from studykit.tasks import Problem
from studykit.tasks.templates import render

PROBLEM = Problem("p1", "What is 2 + 3?", "5", {"task": "math500"})


class _ChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return f"<user>{messages[0]['content']}</user><assistant>"


def test_think_template_asks_for_both_tags_and_ends_at_the_assistant_turn():
    text = render(PROBLEM, "think")
    assert "<think> </think>" in text and "<answer> </answer>" in text
    assert text.endswith("User: What is 2 + 3?\nAssistant:")


def test_boxed_and_raw():
    assert render(PROBLEM, "boxed").startswith("What is 2 + 3?\n") and "\\boxed{}" in render(PROBLEM, "boxed")
    assert render(PROBLEM, "raw") == "What is 2 + 3?"


def test_chat_template_is_used_when_the_tokenizer_has_one():
    text = render(PROBLEM, "think", tokenizer=_ChatTokenizer())
    assert text.startswith("<user>What is 2 + 3?") and text.endswith("</user><assistant>")
    assert "<answer> </answer>" in text
    assert render(PROBLEM, "think", tokenizer=_ChatTokenizer(), use_chat=False) == render(PROBLEM, "think")
    assert render(PROBLEM, "raw", tokenizer=_ChatTokenizer()) == "What is 2 + 3?"


def test_unknown_template_names_the_choices():
    with pytest.raises(ValueError, match="boxed"):
        render(PROBLEM, "cot")
