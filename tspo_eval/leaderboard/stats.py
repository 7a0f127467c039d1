"""Paired statistics for two runs answered on the same questions.

Everything works on boolean outcome vectors aligned question by question:
``run[i]`` and ``base[i]`` say whether the two runs answered question ``i`` correctly.

* :func:`paired_bootstrap` -- percentile bootstrap of the accuracy difference, resampling
  questions (the same resampled questions for both runs), seeded.
* :func:`mcnemar_exact` -- exact McNemar test: a two-sided binomial test on the discordant pairs.
* :func:`bootstrap_accuracy_ci` -- percentile bootstrap interval of one run's accuracy (chart error bars).

The bootstrap draws, with ``rng = numpy.random.default_rng(seed)``, an index matrix
``rng.integers(0, n, size=(n_boot, n))`` (in row blocks of an even size, which yields the
same numbers as one call) and takes the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
percentiles (numpy's default linear interpolation) of the resampled statistics.  Every call
starts from a fresh generator, so a result does not depend on what was computed before it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tspo_eval.errors import InputError

_BLOCK_ROWS = 512  # even: numpy's bounded 32-bit draws then never straddle two calls


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval, all in the unit of the statistic."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test.  ``b``: run right / baseline wrong; ``c``: run wrong / baseline right."""

    b: int
    c: int
    p_value: float


def _as_bool(values: np.ndarray | list[bool], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=bool)
    if array.ndim != 1:
        raise InputError(f"{name}: expected a 1-D vector of outcomes, got shape {array.shape}")
    return array


def _check_bootstrap(n_boot: int, confidence: float) -> None:
    if n_boot < 1:
        raise InputError(f"bootstrap resamples must be >= 1, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_means(columns: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """Means of each column (int/bool/float vectors [n], all the same n) over the same ``n_boot``
    resamples of positions -> one [n_boot] array per column (one index draw serves them all)."""
    n = columns[0].shape[0]
    integral = all(c.dtype.kind in "bi" and (c.size == 0 or (c.min() >= -127 and c.max() <= 127)) for c in columns)
    packed = [c.astype(np.int8 if integral else np.float64) for c in columns]
    rng = np.random.default_rng(seed)
    out = [np.empty(n_boot, dtype=np.float64) for _ in columns]
    for start in range(0, n_boot, _BLOCK_ROWS):
        rows = min(_BLOCK_ROWS, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))
        for values, target in zip(packed, out):
            sums = values[idx].sum(axis=1, dtype=np.int64 if integral else np.float64)
            target[start : start + rows] = sums / n
    return out


def _percentile_interval(estimate: float, samples: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return Interval(float(estimate), float(low), float(high))


def paired_bootstrap(
    run: np.ndarray | list[bool],
    base: np.ndarray | list[bool],
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Accuracy difference ``mean(run) - mean(base)`` (fractions, not percent) with a paired
    percentile bootstrap interval.  ``run``, ``base``: bool [n], aligned on questions."""
    run_b, base_b = _as_bool(run, "run"), _as_bool(base, "baseline")
    if run_b.shape != base_b.shape:
        raise InputError(f"paired outcomes differ in length: {run_b.shape[0]} vs {base_b.shape[0]}")
    _check_bootstrap(n_boot, confidence)
    if run_b.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    diff = run_b.astype(np.int8) - base_b.astype(np.int8)
    (samples,) = bootstrap_means([diff], n_boot, seed)
    return _percentile_interval(diff.mean(), samples, confidence)


def bootstrap_accuracy_ci(
    outcomes: np.ndarray | list[bool], n_boot: int = 10000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Accuracy (fraction) of one run with a percentile bootstrap interval; ``outcomes``: bool [n]."""
    values = _as_bool(outcomes, "outcomes")
    _check_bootstrap(n_boot, confidence)
    if values.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    (samples,) = bootstrap_means([values], n_boot, seed)
    return _percentile_interval(values.mean(), samples, confidence)


def accuracy_and_paired_bootstrap(
    run: np.ndarray | list[bool], base: np.ndarray | list[bool], n_boot: int = 10000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[Interval, Interval]:
    """``(bootstrap_accuracy_ci(run), paired_bootstrap(run, base))`` from one index draw: the same
    numbers as the two separate calls (same seed and length), at about half the cost."""
    run_b, base_b = _as_bool(run, "run"), _as_bool(base, "baseline")
    if run_b.shape != base_b.shape:
        raise InputError(f"paired outcomes differ in length: {run_b.shape[0]} vs {base_b.shape[0]}")
    _check_bootstrap(n_boot, confidence)
    if run_b.size == 0:
        nan = Interval(math.nan, math.nan, math.nan)
        return nan, nan
    diff = run_b.astype(np.int8) - base_b.astype(np.int8)
    acc, delta = bootstrap_means([run_b, diff], n_boot, seed)
    return (_percentile_interval(run_b.mean(), acc, confidence),
            _percentile_interval(diff.mean(), delta, confidence))


def binomial_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair coin flips (``scipy.stats.binomtest``;
    for p = 1/2 this is ``min(1, 2 * P[X <= min(k, n - k)])``); 1 when ``n == 0``."""
    if n < 0 or not 0 <= k <= n:
        raise InputError(f"invalid binomial counts k={k}, n={n}")
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(k, n, 0.5, alternative="two-sided").pvalue))


def mcnemar_exact(run: np.ndarray | list[bool], base: np.ndarray | list[bool]) -> McNemar:
    """Exact McNemar test of two paired outcome vectors (bool [n] each)."""
    run_b, base_b = _as_bool(run, "run"), _as_bool(base, "baseline")
    if run_b.shape != base_b.shape:
        raise InputError(f"paired outcomes differ in length: {run_b.shape[0]} vs {base_b.shape[0]}")
    b = int(np.count_nonzero(run_b & ~base_b))
    c = int(np.count_nonzero(~run_b & base_b))
    return McNemar(b=b, c=c, p_value=binomial_two_sided_half(b, b + c))

