"""Reading an answer out of a completion: `extract_answer` (the first `<answer>...</answer>` block, multi-line,
else the last `\\boxed{...}`, else None; texts cut to their last `MAX_TEXT_CHARS` characters first, so hostile
input stays cheap), `format_ok` (`<think>...</think>` then `<answer>...</answer>`, newlines allowed anywhere inside:
the paper's released regex lacked DOTALL and failed every multi-line reasoning) and the string normalisation that
`studykit.scoring.verify.math_equal` tries before math-verify. Pure string work: no parser, no process.
"""

from __future__ import annotations

import re

MAX_TEXT_CHARS = 20_000  # extract_answer looks at no more than the last this many characters
MAX_ANSWER_CHARS = 1_000  # longer predicted answers are not math (and too costly to parse): False
_MAX_BOXED_TRIES = 64


# ----------------------------------------------------------------------------- extraction


def _balanced_group(text: str, open_at: int) -> str | None:
    """Content of the `{...}` group whose `{` is at `open_at`; `\\{` and `\\}` do not count. None if unclosed."""
    depth, i, n = 0, open_at, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
        i += 1
    return None


def _braces_balanced(text: str) -> bool:
    """Unescaped `{` and `}` pair up (malformed LaTeX such as `\\frac{` can never be a right answer)."""
    depth, i = 0, 0
    while i < len(text) and depth >= 0:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 2 if text[i] == "\\" else 1
    return depth == 0


def _boxed_at(text: str, start: int) -> str | None:
    """The argument of the `\\boxed` command that starts at `start`."""
    i = start + len("\\boxed")
    if i < len(text) and (text[i].isalpha()):
        return None  # some other command, e.g. \boxedx
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        return _balanced_group(text, i)
    m = re.match(r"[^\s${}]+", text[i : i + 200])  # `\boxed 5`: the next token, without end punctuation
    token = m.group(0).rstrip(".,;:") if m else ""
    return token or None


def _last_boxed(text: str) -> str | None:
    end = len(text)
    for _ in range(_MAX_BOXED_TRIES):
        at = text.rfind("\\boxed", 0, end)
        if at < 0:
            return None
        content = _boxed_at(text, at)
        if content is not None:
            return content.strip()
        end = at
    return None


def extract_answer(text: str) -> str | None:
    """The first `<answer>` block's stripped content, else the last `\\boxed{}` argument, else None."""
    if not isinstance(text, str) or not text:
        return None
    if len(text) > MAX_TEXT_CHARS:
        text = text[-MAX_TEXT_CHARS:]
    start = text.find("<answer>")
    if start >= 0:
        end = text.find("</answer>", start + len("<answer>"))
        if end >= 0:
            return text[start + len("<answer>") : end].strip()
    return _last_boxed(text)


_FORMAT_RE = re.compile(r"\s*<think>(?P<think>.*)</think>\s*<answer>(?P<answer>.*)</answer>\s*", re.DOTALL)


def format_ok(text: str) -> bool:
    """True iff `text` is exactly `<think>...</think>` then `<answer>...</answer>`.

    Rules: leading and trailing whitespace is allowed; anything between `</think>` and `<answer>` must be
    whitespace; each of the four tags appears exactly once; the reasoning may be empty but the answer must
    contain a non-space character; newlines are allowed inside both blocks (DOTALL, the paper's code lacked
    it). Anything else after `</answer>` fails, so the caller strips an EOS token string before calling.
    """
    if not isinstance(text, str):
        return False
    if any(text.count(tag) != 1 for tag in ("<think>", "</think>", "<answer>", "</answer>")):
        return False
    m = _FORMAT_RE.fullmatch(text)
    return bool(m and m.group("answer").strip())


# ----------------------------------------------------------------------------- normalisation

_SPACING = re.compile(r"\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\[!,;: ]")
# Whitespace between two word characters is kept as one space (`2 3` is not `23`, `\pi r` is not `\pir`); any
# other whitespace (`x = 3`, `\frac {1} {2}`) means nothing in LaTeX and is dropped.
# SI digit grouping (`10 000`, `1 000 000`) is one number: its spaces go before the word-gap rule sees them.
_WORD_GAP = re.compile(r"(?<=\w)\s+(?=\w)")
_SPACE = re.compile(r"\s+")
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?: \d{3})+(?![\w.])")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")


def _strip_dollars(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s.startswith("$") and s.endswith("$") and not s.endswith("\\$"):
        s = s[1:-1].strip()
    return s


def _unbox(s: str) -> str:
    """`s` without `$` delimiters and, when it holds a `\\boxed{}`, just the last box's content."""
    s = _strip_dollars(s)
    if "\\boxed" in s:
        inner = _last_boxed(s)
        if inner is not None:
            s = _strip_dollars(inner)
    return s


def _normalise(s: str) -> str:
    """A conservative canonical string: equal results mean equal answers (the converse need not hold)."""
    s = _THOUSANDS.sub(lambda m: m.group().replace(" ", ""), _SPACING.sub("", _unbox(s)))
    s = " ".join(_SPACE.sub("", piece) for piece in _WORD_GAP.split(s))
    s = _FRAC.sub(r"\\frac", s)
    return s.rstrip(".")
