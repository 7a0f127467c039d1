"""Rewards of one sampled frame set: R_A (answer), R_T (frames inside the ground-truth spans), total."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tspo_eval.benchmarks.answers import extract_answer

#: the largest total reward (R_A = 1 plus R_T = 1, or R_A = 1 plus the general items' constant 1)
MAX_REWARD = 2.0
KINDS: tuple[str, ...] = ("general", "specific")


def answer_reward(text: str | None, answer: str, num_options: int) -> float:
    """R_A: 1.0 when the first option letter found in ``text`` (``extract_answer``, rule
    ``first-letter``) equals the ground-truth letter ``answer``, else 0.0 (unparsed counts as wrong)."""
    found = extract_answer(text, num_options, rule="first-letter")
    return 1.0 if found is not None and found == answer.strip().upper() else 0.0


def inside_spans(times: Sequence[float] | np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """Bool ``[K]``: whether each time (seconds) lies in some ``[start, end]`` span (bounds included)."""
    t = np.asarray(times, dtype=np.float64).reshape(-1, 1)
    if not len(spans):
        return np.zeros(t.shape[0], dtype=bool)
    bounds = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    return ((t >= bounds[:, 0]) & (t <= bounds[:, 1])).any(axis=1)


def span_reward(times: Sequence[float] | np.ndarray, spans: Sequence[tuple[float, float]]) -> float:
    """R_T: the fraction of the sampled frames (``times`` in seconds) inside the spans (0.0 without spans)."""
    inside = inside_spans(times, spans)
    return float(inside.mean()) if inside.size else 0.0


def total_reward(r_a: float, r_t: float, kind: str) -> float:
    """``R_A + R_T`` for needle ("specific") items, ``R_A + 1`` for "general" items."""
    if kind == "specific":
        return r_a + r_t
    if kind == "general":
        return r_a + 1.0
    raise ValueError(f"unknown item kind {kind!r}; choose one of {', '.join(KINDS)}")
