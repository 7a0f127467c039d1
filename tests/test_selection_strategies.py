"""Selection strategies on hand-built scores with answers worked out by hand from the spec."""
from __future__ import annotations

import pytest
import torch

from tspo_eval.agent import STRATEGIES, select_positions
from tspo_eval.agent.selection import bin_max_proposals, select_aks
from tspo_eval.benchmarks import resolve_strategy
from tspo_eval.errors import InputError


def pick(scores, k, strategy):
    out = select_positions(torch.tensor(scores, dtype=torch.float32), k, strategy)
    assert out.dtype == torch.long
    return out.tolist()


# -- topk -------------------------------------------------------------------------------------
def test_topk_highest_in_temporal_order() -> None:
    assert pick([0.1, 0.9, 0.3, 0.8, 0.5, 0.2], 3, "topk") == [1, 3, 4]


def test_topk_ties_go_to_lower_index() -> None:
    assert pick([1, 1, 1, 1, 1], 2, "topk") == [0, 1]
    assert pick([0, 2, 1, 2, 2], 2, "topk") == [1, 3]
    assert pick([3, 5, 5, 1], 1, "topk") == [1]


# -- bin-max ----------------------------------------------------------------------------------
def test_bin_max_proposals_are_rounded_half_to_even() -> None:
    assert bin_max_proposals(10, 4).tolist() == [0, 3, 6, 9]
    assert bin_max_proposals(8, 3).tolist() == [0, 4, 7]  # 3.5 -> 4


def test_bin_max_one_argmax_per_bin() -> None:
    # T=10, K=4: proposals 0,3,6,9 -> bins {0,1} {2,3,4} {5,6,7} {8,9}
    scores = [0, 1, 5, 0, 5, 2, 3, 3, 9, 9]
    assert pick(scores, 4, "bin-max") == [1, 2, 6, 8]
    assert pick(scores, 4, "topk") == [2, 4, 8, 9]  # differs: topk takes two from one bin


def test_bin_max_equidistant_candidate_joins_first_proposal() -> None:
    # T=8, K=3: proposals 0,4,7; candidate 2 is 2 away from both 0 and 4 -> bin of proposal 0
    assert pick([0, 0, 9, 1, 1, 1, 1, 1], 3, "bin-max") == [2, 3, 6]


def test_bin_max_k1_is_global_argmax() -> None:
    assert pick([3, 5, 5, 1], 1, "bin-max") == [1]


@pytest.mark.parametrize("seed", range(5))
def test_bin_max_returns_k_distinct_sorted(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    length = int(torch.randint(65, 3000, (1,), generator=gen))
    out = select_positions(torch.randn(length, generator=gen), 64, "bin-max")
    assert len(out) == 64 and bool((out[1:] > out[:-1]).all())


# -- aks --------------------------------------------------------------------------------------
def _aks_mixed_depths() -> list[float]:
    # first half: min (0) then 1s -> splits to depth 3 (quota 1 per segment of 4);
    # second half: 0.55 x 8 then 1.0 x 8 -> top-8 mean - mean = 0.225 > 0.2 -> kept at depth 1, quota 4
    return [0.0] + [1.0] * 15 + [0.55] * 8 + [1.0] * 8


def test_aks_mixed_depths() -> None:
    assert pick(_aks_mixed_depths(), 8, "aks") == [1, 4, 8, 12, 24, 25, 26, 27]


def test_aks_is_invariant_to_affine_rescaling() -> None:
    scores = [10 * s - 3 for s in _aks_mixed_depths()]
    assert pick(scores, 8, "aks") == [1, 4, 8, 12, 24, 25, 26, 27]


def test_aks_peaked_scores_stay_unsplit_like_topk() -> None:
    scores = [0.0] * 16
    for i in (3, 5, 9, 12):
        scores[i] = 1.0
    assert pick(scores, 4, "aks") == [3, 5, 9, 12] == pick(scores, 4, "topk")


def test_aks_flat_scores_spread_over_eight_segments() -> None:
    scores = [0.9] * 32
    scores[0], scores[5], scores[27] = 0.0, 1.0, 1.0
    assert pick(scores, 8, "aks") == [1, 5, 8, 12, 16, 20, 27, 28]


def test_aks_can_return_fewer_than_k_like_the_reference() -> None:
    # K=12 on the flat case: eight depth-3 segments contribute int(12/8) = 1 each -> 8 frames
    scores = [0.9] * 32
    scores[0], scores[5], scores[27] = 0.0, 1.0, 1.0
    assert pick(scores, 12, "aks") == [1, 5, 8, 12, 16, 20, 27, 28]


def test_aks_k1_never_empty() -> None:
    assert pick([0.9, 0.9, 1.0, 0.9, 0.0, 0.9], 1, "aks") == [2]
    assert select_aks(torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64), 1).tolist() == [0]


# -- uniform ----------------------------------------------------------------------------------
def test_uniform_linspace_rounded() -> None:
    assert pick(list(range(10)), 4, "uniform") == [0, 3, 6, 9]
    assert pick([5.0] * 10, 3, "uniform") == [0, 4, 9]  # 4.5 -> 4 (half to even), scores ignored
    assert pick([0.0] * 100, 1, "uniform") == [0]
    assert len(pick([0.0] * 100, 64, "uniform")) == 64


# -- common rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("length,k", [(3, 3), (3, 64), (1, 1), (1, 5)])
def test_t_at_most_k_keeps_everything(strategy: str, length: int, k: int) -> None:
    assert pick([0.3, 0.1, 0.2][:length], k, strategy) == list(range(length))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_k1_picks_one(strategy: str) -> None:
    out = pick([0.1, 0.7, 0.2, 0.4], 1, strategy)
    assert len(out) == 1
    if strategy != "uniform":
        assert out == [1]


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_bad_k_is_input_error(k) -> None:
    with pytest.raises(InputError, match="positive integer"):
        select_positions(torch.rand(10), k, "topk")


def test_unknown_strategy_and_nan() -> None:
    with pytest.raises(InputError, match="unknown strategy 'best'"):
        select_positions(torch.rand(10), 3, "best")
    with pytest.raises(InputError, match="NaN"):
        select_positions(torch.tensor([0.1, float("nan"), 0.3, 0.2]), 2, "topk")


def test_resolve_strategy() -> None:
    assert resolve_strategy("auto", "videomme") == "bin-max"
    assert resolve_strategy("auto", "tspo_video_mme_w_subtitle") == "bin-max"
    assert resolve_strategy("auto", "Video-MME") == "bin-max"
    assert resolve_strategy("auto", "longvideobench") == "topk"
    assert resolve_strategy("auto", None) == "topk"
    assert resolve_strategy("aks", "videomme") == "aks"
    with pytest.raises(InputError):
        resolve_strategy("nearest", "mlvu")
