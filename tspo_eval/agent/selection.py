"""Frame selection strategies on a score vector (pure tensor functions, deterministic).

Every strategy returns candidate *positions* (``0..T-1``) as an int64 tensor in temporal order.
If ``T <= K`` all candidates are kept.  Ties are broken by the lower position.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tspo_eval.errors import InputError
from tspo_eval.selector_options import STRATEGIES

#: AKS reference values: split threshold t1, std threshold t2, maximum depth.
AKS_T1, AKS_T2, AKS_MAX_DEPTH = 0.2, -100.0, 3


def _check(scores: Tensor, num_frames: int, strategy: str) -> Tensor:
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames <= 0:
        raise InputError(f"number of frames must be a positive integer, got {num_frames!r}")
    scores = torch.as_tensor(scores).detach().to("cpu", torch.float64).reshape(-1)
    if torch.isnan(scores).any():
        raise InputError("scores contain NaN; cannot rank candidate frames")
    return scores


def _top_positions(scores: Tensor, k: int) -> Tensor:
    """Positions of the ``k`` highest scores, ties to the lower position (unsorted in time)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[:k]


def select_topk(scores: Tensor, k: int) -> Tensor:
    """The ``k`` highest scores, returned in temporal order."""
    return torch.sort(_top_positions(scores, k)).values


def bin_max_proposals(length: int, k: int) -> Tensor:
    """Proposal positions ``round(i * (T-1) / (K-1))``, ``i = 0..K-1`` (K = 1: the middle)."""
    if k == 1:
        return torch.tensor([float(round((length - 1) / 2))], dtype=torch.float64)
    return torch.round(torch.arange(k, dtype=torch.float64) * (length - 1) / (k - 1))


def select_bin_max(scores: Tensor, k: int) -> Tensor:
    """Each candidate joins its nearest proposal (ties to the first); one argmax per non-empty bin."""
    length = scores.numel()
    proposals = bin_max_proposals(length, k)
    position = torch.arange(length, dtype=torch.float64)
    right = torch.searchsorted(proposals, position).clamp(max=k - 1)  # first proposal >= t
    left = (right - 1).clamp(min=0)
    dist_left = (position - proposals[left]).abs()
    dist_right = (proposals[right] - position).abs()
    bins = torch.where(dist_left <= dist_right, left, right)  # ties go to the first (left) proposal
    _, counts = torch.unique_consecutive(bins, return_counts=True)  # bins are contiguous in time
    chosen, start = [], 0
    for count in counts.tolist():
        chosen.append(start + int(torch.argmax(scores[start : start + count])))  # first maximum
        start += count
    return torch.tensor(chosen, dtype=torch.long)


def _aks_segments(scores: Tensor, k: int, t1: float, t2: float, max_depth: int) -> list[tuple[int, int, int]]:
    """Final ``(start, stop, depth)`` segments of the recursive halving (breadth-first, like the reference)."""
    final, level = [], [(0, scores.numel(), 0)]
    while level:
        split = []
        for start, stop, depth in level:
            segment = scores[start:stop]
            if segment.numel() == 0:
                continue
            top_mean = torch.sort(segment, descending=True).values[:k].mean()
            spread = float(top_mean - segment.mean())
            std = float(segment.std(unbiased=False))
            if (spread > t1 and std > t2) or depth >= max_depth:
                final.append((start, stop, depth))
            else:
                middle = start + (stop - start) // 2
                split += [(start, middle, depth + 1), (middle, stop, depth + 1)]
        level = split
    return final


def select_aks(
    scores: Tensor, k: int, t1: float = AKS_T1, t2: float = AKS_T2, max_depth: int = AKS_MAX_DEPTH
) -> Tensor:
    """Adaptive keyframe sampling on min-max normalised scores.

    A segment at depth ``d`` that is not split contributes its top ``int(K / 2**d)`` positions.
    As in the reference, the total can be *fewer* than ``K`` (``K`` not divisible by ``2**d``, or a
    segment shorter than its quota); it is never more, and it is not topped up.  One deviation:
    when every final segment's quota is 0 (only possible for ``K < 2**max_depth``, e.g. ``K = 1``)
    the reference would return no frame at all; we return the global top-1 instead.
    """
    low, high = scores.min(), scores.max()
    norm = (scores - low) / (high - low) if high > low else torch.zeros_like(scores)
    chosen: list[Tensor] = []
    for start, stop, depth in _aks_segments(norm, k, t1, t2, max_depth):
        quota = int(k / 2**depth)
        if quota > 0:
            chosen.append(start + _top_positions(norm[start:stop], quota))
    if not chosen:
        return _top_positions(norm, 1)
    return torch.sort(torch.cat(chosen)).values


def select_uniform(length: int, k: int) -> Tensor:
    """``round(linspace(0, T-1, K))``: K evenly spaced positions (unique when ``T > K``)."""
    return torch.unique(torch.round(torch.linspace(0, length - 1, k, dtype=torch.float64)).long())


def select_positions(scores: Tensor, num_frames: int, strategy: str) -> Tensor:
    """Positions (int64, temporal order) chosen by ``strategy`` from ``scores`` ``[T]``.

    Raises:
        InputError: ``num_frames <= 0``, an unknown strategy, or NaN scores.
    """
    scores = _check(scores, num_frames, strategy)
    length = scores.numel()
    if length <= num_frames:
        return torch.arange(length, dtype=torch.long)
    if strategy == "topk":
        return select_topk(scores, num_frames)
    if strategy == "bin-max":
        return select_bin_max(scores, num_frames)
    if strategy == "aks":
        return select_aks(scores, num_frames)
    return select_uniform(length, num_frames)
