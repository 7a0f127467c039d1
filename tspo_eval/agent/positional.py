"""Sinusoidal positional code of the TSPO selector head (positions normalised by the sequence length)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def positional_encoding(
    length: int,
    dim: int = 768,
    device: torch.device | str | None = None,
    *,
    start: int = 0,
    total: int | None = None,
) -> Tensor:
    """The spec's positional code, float32 ``[length, dim]``, for rows ``start .. start+length-1`` of ``total``.

    For ``t = 0..T-1`` with ``p = t / T``: ``PE[t, 2i] = sin(p * w_i)``, ``PE[t, 2i+1] = cos(p * w_i)``,
    ``w_i = exp(-2i * ln(10000) / dim)``.  ``total`` defaults to ``length`` (the whole sequence).
    """
    if dim % 2:
        raise ValueError(f"positional code needs an even dimension, got {dim}")
    total = length if total is None else total
    position = torch.arange(start, start + length, dtype=torch.float32, device=device) / max(total, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    angle = position[:, None] * freq[None, :]  # [length, dim/2]
    code = torch.empty(length, dim, dtype=torch.float32, device=device)
    code[:, 0::2] = torch.sin(angle)
    code[:, 1::2] = torch.cos(angle)
    return code
