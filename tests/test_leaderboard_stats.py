"""Paired statistics: bootstrap against a direct numpy computation, McNemar against hand counts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tspo_eval.errors import InputError
from tspo_eval.leaderboard.stats import (
    accuracy_and_paired_bootstrap,
    binomial_two_sided_half,
    bootstrap_accuracy_ci,
    mcnemar_exact,
    paired_bootstrap,
)


def _outcomes(n: int, p: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < p


@pytest.mark.parametrize("n,n_boot", [(37, 1000), (250, 1500), (1, 10)])
def test_paired_bootstrap_matches_direct_numpy(n: int, n_boot: int) -> None:
    run, base = _outcomes(n, 0.6, 1), _outcomes(n, 0.45, 2)
    got = paired_bootstrap(run, base, n_boot=n_boot, seed=123, confidence=0.95)
    # the documented algorithm, in one shot (the implementation draws in row blocks)
    rng = np.random.default_rng(123)
    idx = rng.integers(0, n, size=(n_boot, n))
    diffs = run[idx].mean(axis=1) - base[idx].mean(axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert got.estimate == pytest.approx(run.mean() - base.mean())
    assert got.low == pytest.approx(low, abs=1e-12)
    assert got.high == pytest.approx(high, abs=1e-12)
    assert got.low <= got.estimate <= got.high


def test_bootstrap_is_seeded_and_seed_matters() -> None:
    run, base = _outcomes(300, 0.6, 3), _outcomes(300, 0.5, 4)
    a = paired_bootstrap(run, base, n_boot=800, seed=7)
    assert a == paired_bootstrap(run, base, n_boot=800, seed=7)
    assert a != paired_bootstrap(run, base, n_boot=800, seed=8)


def test_confidence_level_widens_interval() -> None:
    run, base = _outcomes(200, 0.6, 5), _outcomes(200, 0.5, 6)
    narrow = paired_bootstrap(run, base, n_boot=2000, seed=0, confidence=0.5)
    wide = paired_bootstrap(run, base, n_boot=2000, seed=0, confidence=0.99)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_accuracy_ci_matches_direct_numpy() -> None:
    values = _outcomes(91, 0.3, 9)
    got = bootstrap_accuracy_ci(values, n_boot=999, seed=5, confidence=0.9)
    idx = np.random.default_rng(5).integers(0, 91, size=(999, 91))
    low, high = np.percentile(values[idx].mean(axis=1), [5.0, 95.0])
    assert (got.estimate, got.low, got.high) == pytest.approx((values.mean(), low, high))


def test_shared_draws_equal_separate_calls() -> None:
    run, base = _outcomes(333, 0.6, 21), _outcomes(333, 0.5, 22)
    acc, delta = accuracy_and_paired_bootstrap(run, base, n_boot=700, seed=9)
    assert acc == bootstrap_accuracy_ci(run, n_boot=700, seed=9)
    assert delta == paired_bootstrap(run, base, n_boot=700, seed=9)


def test_identical_runs_have_zero_width_interval() -> None:
    run = _outcomes(50, 0.5, 11)
    got = paired_bootstrap(run, run.copy(), n_boot=200, seed=0)
    assert (got.estimate, got.low, got.high) == (0.0, 0.0, 0.0)


def test_mcnemar_counts_and_hand_p_value() -> None:
    run = [True, True, True, True, False, True, False, False]
    base = [False, False, False, True, True, True, False, True]
    # b (run right, baseline wrong): positions 0,1,2 -> 3; c (run wrong, baseline right): 4,7 -> 2
    test = mcnemar_exact(run, base)
    assert (test.b, test.c) == (3, 2)
    # two-sided exact: 2 * P[X <= 2], X ~ Bin(5, 1/2) = 2 * (1 + 5 + 10) / 32 = 1.0
    assert test.p_value == pytest.approx(1.0)
    lopsided = mcnemar_exact([True] * 9 + [False], [False] * 9 + [True])
    assert (lopsided.b, lopsided.c) == (9, 1)
    assert lopsided.p_value == pytest.approx(2 * (1 + 10) / 2**10)


def test_mcnemar_against_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for seed in range(4):
        run, base = _outcomes(400, 0.55, seed), _outcomes(400, 0.5, seed + 100)
        test = mcnemar_exact(run, base)
        expected = scipy_stats.binomtest(test.b, test.b + test.c, 0.5, alternative="two-sided").pvalue
        assert test.p_value == pytest.approx(expected, rel=1e-9)


def test_binomial_edge_cases() -> None:
    assert binomial_two_sided_half(0, 0) == 1.0
    assert binomial_two_sided_half(3, 6) == 1.0
    assert binomial_two_sided_half(0, 3000) < 1e-300 or binomial_two_sided_half(0, 3000) == 0.0
    assert binomial_two_sided_half(1400, 3000) == pytest.approx(
        2 * sum(math.comb(3000, i) for i in range(1401)) / 2**3000)
    with pytest.raises(InputError):
        binomial_two_sided_half(5, 3)


def test_bad_inputs_are_input_errors() -> None:
    with pytest.raises(InputError, match="differ in length"):
        paired_bootstrap([True, False], [True], n_boot=10)
    with pytest.raises(InputError, match="resamples"):
        paired_bootstrap([True], [False], n_boot=0)
    with pytest.raises(InputError, match="confidence"):
        bootstrap_accuracy_ci([True], n_boot=10, confidence=1.5)
    empty = paired_bootstrap([], [], n_boot=10)
    assert math.isnan(empty.estimate) and math.isnan(empty.low)
