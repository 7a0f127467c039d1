"""The whole TSPO selector head written naively from the spec, with a full T x T mask.

This is the oracle for tests and the baseline for ``benchmarks/bench_head.py``: it builds the
``[heads, T, T]`` score matrix and fills excluded entries with ``-1e6`` as the reference does.
Memory grows as ``T^2``; never use it for real work.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from tspo_eval.agent.positional import positional_encoding


def naive_window_mask(length: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """Bool ``[T, T]``: ``mask[j, c]`` is True when row ``j`` may attend to column ``c``."""
    start = torch.arange(length, device=device) - window // 2
    column = torch.arange(length, device=device)
    return (column[None, :] >= start[:, None]) & (column[None, :] <= start[:, None] + window - 1)


def naive_windowed_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int, window: int) -> Tensor:
    """``[T, dim]`` attention with the full ``[heads, T, T]`` matrix and a ``-1e6`` fill."""
    length, dim = q.shape
    head_dim = dim // num_heads
    qh = q.reshape(length, num_heads, head_dim).transpose(0, 1)  # [h, T, d]
    kh = k.reshape(length, num_heads, head_dim).transpose(0, 1)
    vh = v.reshape(length, num_heads, head_dim).transpose(0, 1)
    scores = qh @ kh.transpose(1, 2) / math.sqrt(head_dim)  # [h, T, T]
    scores = scores.masked_fill(~naive_window_mask(length, window, q.device)[None], -1e6)
    return (torch.softmax(scores, dim=-1) @ vh).transpose(0, 1).reshape(length, dim)


def naive_selector_logits(
    state: dict[str, Tensor],
    frame_features: Tensor,
    text_features: Tensor,
    *,
    num_heads: int = 8,
    window: int = 12,
    tau: float = 0.025,
) -> Tensor:
    """Logits ``S / tau`` ``[T]`` of the spec from a selector state dict (names without prefix).

    Args:
        state: ``temporal.Self_{q,k,v}.{weight,bias}``, ``mlp.{0,2}.{weight,bias}``.
        frame_features: ``F_f`` ``[T, 768]``; text_features: ``F_t`` ``[1, 768]``.
    """
    f_f = frame_features.float()
    f_t = text_features.float().reshape(1, -1)
    x = f_f + positional_encoding(f_f.shape[0], f_f.shape[1], f_f.device)
    q = F.linear(x, state["temporal.Self_q.weight"].float(), state["temporal.Self_q.bias"].float())
    k = F.linear(x, state["temporal.Self_k.weight"].float(), state["temporal.Self_k.bias"].float())
    v = F.linear(x, state["temporal.Self_v.weight"].float(), state["temporal.Self_v.bias"].float())
    h = naive_windowed_attention(q, k, v, num_heads, window)
    hidden = torch.relu(F.linear(h, state["mlp.0.weight"].float(), state["mlp.0.bias"].float()))
    f_e = F.linear(hidden, state["mlp.2.weight"].float(), state["mlp.2.bias"].float()) + f_f
    s = F.cosine_similarity(f_e, f_t, dim=-1) + F.cosine_similarity(f_t, f_f, dim=-1)
    return s / tau
