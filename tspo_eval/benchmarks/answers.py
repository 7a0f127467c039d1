"""Answer-letter extraction from free-form model output (one explicit, selectable rule).

Rule ``first-letter`` (the default; unparsed answers score as wrong, as in VLMEvalKit):

1. ``None``, empty or whitespace-only text -> unparsed.
2. Markdown emphasis (``*``, ``__``, backticks) is removed, whitespace stripped.
3. Leading answer phrases are stripped, case-insensitively and repeatedly: "The best answer
   is", "The correct answer is", "The answer is", "The best/correct option is", "Best answer:",
   "Best option:", "Answer:", "Option", "My answer is", "I choose", ... (plus a following ":").
4. If what is left is a single option token -- ``B``, ``(B)``, ``[B]``, ``B.``, ``B)``, ``B:``
   -- that letter is the answer; only here a lower-case letter is accepted (``"b"``, ``"(c)."``),
   since a whole answer of one letter is unambiguous.
5. Otherwise, if the text starts with an upper-case option token followed by a delimiter
   (``"B. A man ..."``, ``"(C) red"``, ``"D) text"``, ``"C because ..."``), that letter; a
   leading ``"A "`` + lower-case word ("A man walks") is read as the article unless an answer
   phrase was stripped before it ("The answer is A cat" -> A).
6. Otherwise the first upper-case letter standing alone (no letter/digit/apostrophe on either
   side) that is a valid option; an ``A`` followed by a space and a lower-case word is the
   English article and skipped.
Letters beyond the option count (``E`` with four options) never count. Nothing found ->
``None`` (unparsed).

Rule ``random``: as above, but an unparsed answer becomes a seeded random valid letter
(lmms-eval's LongVideoBench behaviour); ``seed`` makes it reproducible.
"""
from __future__ import annotations

import random
import re

from tspo_eval.benchmarks.records import LETTERS
from tspo_eval.errors import InputError

ANSWER_RULES = ("first-letter", "random")

_PREFIXES = [
    "the best answer is", "the correct answer is", "the final answer is", "the answer is",
    "the answer", "the best option is", "the correct option is", "the correct choice is",
    "the best choice is", "my answer is", "my choice is", "i choose", "i select", "i pick",
    "best answer", "best option", "correct answer", "final answer", "answer", "option", "choice",
]
_PREFIX_RE = re.compile(r"^(?:" + "|".join(re.escape(p) for p in _PREFIXES) + r")\b\s*(?:is\b)?\s*[:\-=]?\s*",
                        re.IGNORECASE)
_MARKUP_RE = re.compile(r"\*+|__|`+")
_SINGLE_TOKEN_RE = re.compile(r"^[\(\[]?([A-Za-z])[\)\]]?[\.:,]?\)?$")
_LEADING_RE = re.compile(r"^(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])(?:[\.\):,]|\s+-|\s|$))")
_STANDALONE_RE = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])")


def _strip_prefixes(text: str) -> tuple[str, bool]:
    """(text without leading answer phrases, whether any was stripped)."""
    original, previous = text, None
    while previous != text:
        previous = text
        text = _PREFIX_RE.sub("", text, count=1).strip()
    return text, text != original


def _is_article(text: str, start: int, found: str | None) -> bool:
    """True when the "A" at ``start`` reads as the English article ("A man walks")."""
    after = text[start + 1: start + 3]
    return found == "A" and len(after) == 2 and after[0] == " " and after[1].islower()


def parse_letter(text: str | None, num_options: int) -> str | None:
    """Steps 1-6 of the module rule: the answer letter, or None when there is none."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    valid = LETTERS[: max(0, min(num_options, len(LETTERS)))]
    s, after_phrase = _strip_prefixes(_MARKUP_RE.sub("", text).strip())
    if not s:
        return None
    single = _SINGLE_TOKEN_RE.match(s)
    if single:
        found = single.group(1).upper()
        return found if found in valid else None
    leading = _LEADING_RE.match(s)
    if leading:
        found = next(g for g in leading.groups() if g)
        if found in valid and (after_phrase or not _is_article(s, 0, leading.group(3))):
            return found
    for match in _STANDALONE_RE.finditer(s):
        found = match.group(1)
        if found not in valid:
            continue
        if _is_article(s, match.start(), found):
            continue
        return found
    return None


def extract_answer(text: str | None, num_options: int, rule: str = "first-letter",
                   seed: int | str | None = None) -> str | None:
    """The option letter in ``text`` for a question with ``num_options`` options.

    ``rule="first-letter"``: the letter or None (unparsed). ``rule="random"``: unparsed answers
    get ``random.Random(seed).choice`` of the valid letters (seed None -> unseeded).
    """
    if rule not in ANSWER_RULES:
        raise InputError(f"unknown answer rule {rule!r}; choose one of: {', '.join(ANSWER_RULES)}")
    if not 1 <= num_options <= len(LETTERS):
        raise InputError(f"num_options must be 1..{len(LETTERS)}, got {num_options}")
    found = parse_letter(text, num_options)
    if found is None and rule == "random":
        return random.Random(seed).choice(LETTERS[:num_options])
    return found
