"""Every case of the answer-extraction rule (tspo_eval.benchmarks.answers)."""
from __future__ import annotations

import pytest

from tspo_eval.benchmarks import extract_answer
from tspo_eval.errors import InputError

CASES = [
    # bare letters and the single-token forms (lower case accepted only here)
    ("B", "B"), ("b", "B"), ("(b)", "B"), ("(C).", "C"), ("B.", "B"), ("B)", "B"), ("[D]", "D"),
    ("A)", "A"), ("  C  ", "C"), ("a", "A"),
    # markdown
    ("**B**", "B"), ("`C`", "C"), ("**Answer:** D", "D"),
    # answer phrases
    ("The answer is B.", "B"), ("The answer is (C)", "C"), ("Answer: D", "D"), ("answer: c", "C"),
    ("The correct answer is: B", "B"), ("Best option: (A) Delivers a product", "A"), ("Option B", "B"),
    ("option b", "B"), ("The best answer is:\n\nC. Berries.", "C"), ("Answer: \n\nB", "B"),
    ("The answer is A cat.", "A"),
    # leading option token followed by text
    ("A. A man walks", "A"), ("D) text", "D"), ("B: red", "B"), ("C because the man", "C"),
    ("(C) red", "C"),
    # first standalone valid letter elsewhere
    ("I think the answer is C because", "C"), ("Based on the video, B is correct", "B"),
    ("A cat (B)", "B"),
    # unparsed
    ("", None), ("   ", None), (None, None), ("A man is walking", None), ("None of the above", None),
    ("bed", None), ("CD", None), ("I", None), ("b. red", None),
    # letters beyond the option count
    ("E", None), ("E.", None), ("(E) none", None),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_first_letter_rule(text, expected):
    assert extract_answer(text, 4) == expected


def test_option_count_bounds_letters():
    assert extract_answer("E", 5) == "E"
    assert extract_answer("E", 4) is None
    assert extract_answer("D", 3) is None
    assert extract_answer("E or C", 4) == "C"      # out-of-range letters are skipped


def test_random_rule_is_seeded_and_only_for_unparsed():
    picks = {extract_answer("no idea", 4, rule="random", seed=s) for s in range(40)}
    assert picks <= set("ABCD") and len(picks) > 1
    assert extract_answer("no idea", 4, rule="random", seed=7) == extract_answer("no idea", 4, rule="random", seed=7)
    assert extract_answer("B", 4, rule="random", seed=7) == "B"
    assert all(extract_answer("", 3, rule="random", seed=s) in "ABC" for s in range(20))


def test_bad_arguments():
    with pytest.raises(InputError, match="answer rule"):
        extract_answer("A", 4, rule="last-letter")
    with pytest.raises(InputError, match="num_options"):
        extract_answer("A", 0)
