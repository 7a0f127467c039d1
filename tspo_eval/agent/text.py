"""The question stem: the question without its answer options (what TSPO feeds to CLIP)."""
from __future__ import annotations

import re

from tspo_eval.errors import InputError

# a line that starts the options: "Options:", "Choices", "A.", "(A)", "A)", "A:" ...
_OPTIONS_START = re.compile(
    r"\n\s*(?:(?i:options?|choices?|candidates?)\b|\(\s*A\s*\)|A\s*[.):：])",
)
# a text that starts with option A and has an option-B line: options only, no stem ("A. red\nB. blue")
_STARTS_WITH_OPTIONS = re.compile(r"^\s*(?:\(\s*A\s*\)|A\s*[.):：]).*\n\s*(?:\(\s*B\s*\)|B\s*[.):：])", re.S)


def question_stem(question: str) -> str:
    """Cut ``question`` before its options (``"\\nOptions"``, ``"\\nA."``, ``"\\n(A)"``, ...) and strip it.

    Raises:
        InputError: the question (or its stem) is empty.
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError("empty question: a non-blank question text is needed to select frames")
    match = _STARTS_WITH_OPTIONS.match(question) or _OPTIONS_START.search(question)
    stem = (question[: match.start()] if match else question).strip()
    if not stem:
        raise InputError(f"question has no text before its options: {question[:60]!r}")
    return stem
