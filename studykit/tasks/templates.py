"""Prompt templates: how a bare `Problem.prompt` becomes the text the policy continues.

`think` is the instruction of the paper's recipe (arXiv 2508.21188, after DeepSeek-R1): reason inside
`<think>...</think>`, then answer inside `<answer>...</answer>`. `boxed` asks for `\\boxed{}` instead.
`raw` passes the prompt through (the toy world, whose word-level vocabulary has no instruction words).
When the tokenizer has a chat template, the instruction goes in a user turn and the template adds the
assistant header; otherwise the base-model form below is used.
"""

from __future__ import annotations

from typing import Any

from .base import Problem

TEMPLATES = {
    "think": (
        "A conversation between User and Assistant. The user asks a question, and the assistant solves it. "
        "The assistant first thinks about the reasoning process in the mind and then provides the user with "
        "the answer. The reasoning process and answer are enclosed within <think> </think> and "
        "<answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
        "<answer> answer here </answer>.\nUser: {prompt}\nAssistant:"
    ),
    "boxed": "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{{}}.\n",
    "raw": "{prompt}",
}
_CHAT_INSTRUCTION = {
    "think": (
        "{prompt}\nThink through the problem inside <think> </think> tags, then give only the final "
        "answer inside <answer> </answer> tags."
    ),
    "boxed": TEMPLATES["boxed"],
}


def render(problem: Problem | str, template: str = "think", tokenizer: Any = None, use_chat: bool = True) -> str:
    """The full prompt text for one problem."""
    prompt = problem.prompt if isinstance(problem, Problem) else problem
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; expected one of {sorted(TEMPLATES)}")
    if template != "raw" and use_chat and getattr(tokenizer, "chat_template", None):
        message = {"role": "user", "content": _CHAT_INSTRUCTION[template].format(prompt=prompt)}
        return tokenizer.apply_chat_template([message], tokenize=False, add_generation_prompt=True)
    return TEMPLATES[template].format(prompt=prompt)
