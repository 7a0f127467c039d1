"""Group-relative advantages, and TempSamp-R1's three ways to mix one off-policy (oracle) sample in.

A group holds the rewards of the G sets drawn for one prompt.  With an off-policy mode the group
is G-1 on-policy sets plus the oracle set (K frames from the ground-truth spans), always last.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from tspo_eval.training.rewards import MAX_REWARD

OFF_POLICY_MODES: tuple[str, ...] = ("none", "downscale", "anchor", "shaping")
STD_EPS = 1e-4
#: TempSamp-R1 constants
DOWNSCALE_FRACTION = 0.8
ANCHOR_LAMBDA = 1.2
SHAPING_TAU, SHAPING_A1, SHAPING_A2 = 0.8, 0.01, 1.0


def group_advantages(rewards: Tensor) -> Tensor:
    """``A_i = (r_i - mean(r)) / (std_unbiased(r) + 1e-4)`` within the group: float64 ``[G]``.

    A group of one (no spread to measure) gets zeros; equal rewards give zeros (no gradient).
    """
    r = rewards.detach().to(torch.float64).reshape(-1)
    if r.numel() < 2:
        return torch.zeros_like(r)
    return (r - r.mean()) / (r.std(unbiased=True) + STD_EPS)


def shape_rewards(
    rewards: Tensor, tau: float = SHAPING_TAU, a1: float = SHAPING_A1, a2: float = SHAPING_A2
) -> Tensor:
    """TempSamp-R1's non-linear reward shaping (float64, same shape as ``rewards``)::

        r' = tau + a1 * ln(r - tau + 1)                        if r >= tau
        r' = tau - (exp(a2 * (tau - r)) - 1) / (exp(a2) - 1)   if r <  tau

    Continuous at ``r = tau`` (both branches give ``tau``); nearly flat above it.
    """
    r = rewards.detach().to(torch.float64)
    above = tau + a1 * torch.log(torch.clamp(r - tau + 1.0, min=1e-12))
    below = tau - (torch.exp(a2 * (tau - r)) - 1.0) / (math.exp(a2) - 1.0)
    return torch.where(r >= tau, above, below)


def downscale_reward(reward: float, max_reward: float = MAX_REWARD, fraction: float = DOWNSCALE_FRACTION) -> float:
    """The off-policy reward capped at ``fraction * max_reward``."""
    return min(float(reward), fraction * max_reward)


def mixed_advantages(on_policy: Tensor, off_policy: float | None, mode: str, max_reward: float = MAX_REWARD) -> Tensor:
    """Advantages float64 ``[G]`` of a group: the on-policy rewards ``[G_on]``, then the oracle's.

    Args:
        on_policy: rewards of the on-policy sets ``[G_on]``.
        off_policy: the oracle set's reward, or None (no oracle: plain GRPO over ``on_policy``).
        mode: ``none`` (no oracle; ``off_policy`` must be None), ``downscale`` (oracle reward capped
            at 0.8 * max_reward, then normalised with the group), ``anchor`` (statistics of the
            on-policy sets only; the oracle's advantage is 1.2 * the largest on-policy advantage),
            ``shaping`` (every reward shaped by :func:`shape_rewards`, then normalised together).
    Returns:
        ``[G_on]`` without an oracle, ``[G_on + 1]`` with it (oracle last).
    """
    if mode not in OFF_POLICY_MODES:
        raise ValueError(f"unknown off-policy mode {mode!r}; choose one of {', '.join(OFF_POLICY_MODES)}")
    on = on_policy.detach().to(torch.float64).reshape(-1)
    if off_policy is None or mode == "none":
        if off_policy is not None:
            raise ValueError("off-policy mode 'none' takes no oracle reward")
        return group_advantages(on)
    off = torch.tensor([float(off_policy)], dtype=torch.float64)
    if mode == "downscale":
        return group_advantages(torch.cat([on, off.clamp(max=DOWNSCALE_FRACTION * max_reward)]))
    if mode == "anchor":
        a_on = group_advantages(on)
        return torch.cat([a_on, (ANCHOR_LAMBDA * a_on.max()).reshape(1)])
    return group_advantages(shape_rewards(torch.cat([on, off])))
