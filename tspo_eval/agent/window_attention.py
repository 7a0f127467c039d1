"""Exact local (windowed) multi-head attention without any T x T matrix.

Row ``j`` attends to columns ``j - window//2 .. j - window//2 + window - 1`` clamped to
``[0, T-1]`` (TSPO: window 12 -> ``j-6 .. j+5``).

Rows are processed in blocks of ``B``: the queries of one block only need the ``B + window - 1``
keys around it, taken from the zero-padded key/value sequences with ``unfold`` (one strided view
for all blocks).  Each block computes ``[heads, B, B + window - 1]`` logits with one batched
matmul, the entries outside a row's window (or outside ``[0, T-1]``) are masked with ``-inf``, and
the softmax over the remaining entries equals the reference's softmax over its ``-1e6``-filled
T x T row.  Extra memory is ``O(T * (dim + heads * (B + window)))``: linear in T.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_BLOCK = 32


def window_reach(window: int) -> tuple[int, int]:
    """``(left, right)``: row ``j`` sees columns ``j - left .. j + right``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    left = window // 2
    return left, window - left - 1


def window_validity(length: int, window: int, device: torch.device | str | None = None) -> Tensor:
    """Bool ``[T, window]``: whether offset ``o`` of row ``j`` (column ``j - left + o``) lies inside ``[0, T-1]``."""
    left, _ = window_reach(window)
    column = torch.arange(length, device=device)[:, None] - left + torch.arange(window, device=device)[None, :]
    return (column >= 0) & (column < length)


def _block_mask(length: int, window: int, block: int, n_blocks: int, device: torch.device) -> Tensor:
    """Bool ``[n_blocks, 1, B, B + window - 1]``: True where block row ``r`` may attend to span column ``c``.

    Span column ``c`` of block ``b`` is global column ``b*B - left + c``; row ``r`` is ``b*B + r``.
    Padding rows (``>= T``, cut from the output) keep their whole band: a fully masked row would
    give a NaN softmax, harmless in the forward pass but leaking NaN into gradients.
    """
    left, _ = window_reach(window)
    span = block + window - 1
    row = torch.arange(block, device=device)[:, None]
    col = torch.arange(span, device=device)[None, :]
    band = (col >= row) & (col < row + window)  # [B, span], the same for every block
    first = torch.arange(n_blocks, device=device)[:, None, None] * block  # [nb, 1, 1]
    global_col = first - left + col  # [nb, 1, span]
    padding_row = first + row >= length  # [nb, B, 1]
    return (band[None] & (((global_col >= 0) & (global_col < length)) | padding_row))[:, None]


def padded_layout(length: int, window: int, block: int = DEFAULT_BLOCK) -> tuple[int, int, int]:
    """``(block, query_rows, key_rows)``: the block size used for ``length`` rows and the row counts of
    the zero-padded query buffer (rows ``0..T-1`` at the top) and key/value buffers (row ``r`` is
    column ``r - left``) that :func:`attention_on_padded` expects."""
    left, right = window_reach(window)
    block = max(1, min(block, length))
    padded = -(-length // block) * block
    return block, padded, left + padded + right


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int, window: int, block: int = DEFAULT_BLOCK) -> Tensor:
    """Multi-head attention restricted to a sliding window; heads concatenated, no output projection.

    Args:
        q, k, v: ``[T, dim]`` (already projected), ``dim = num_heads * head_dim``.
        block: rows per block (speed/memory trade-off only; the result does not depend on it).
    Returns:
        ``[T, dim]`` in the dtype of ``q``.
    """
    length = q.shape[0]
    left, _ = window_reach(window)
    block, query_rows, key_rows = padded_layout(length, window, block)
    qp = F.pad(q, (0, 0, 0, query_rows - length))
    kp = F.pad(k, (0, 0, left, key_rows - length - left))
    vp = F.pad(v, (0, 0, left, key_rows - length - left))
    return attention_on_padded(qp, kp, vp, length, num_heads, window, block)


def attention_on_padded(
    qp: Tensor, kp: Tensor, vp: Tensor, length: int, num_heads: int, window: int, block: int
) -> Tensor:
    """:func:`windowed_attention` on buffers laid out by :func:`padded_layout` (callers can project into them).

    Args:
        qp: ``[query_rows, dim]``; kp, vp: ``[key_rows, dim]`` (padding rows are ignored: masked).
    Returns:
        ``[T, dim]``.
    """
    dim = qp.shape[1]
    if dim % num_heads:
        raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
    head_dim = dim // num_heads
    n_blocks = qp.shape[0] // block
    span = block + window - 1
    qb = qp.reshape(n_blocks, block, num_heads, head_dim).transpose(1, 2)  # [nb, h, B, d] (view)
    kb = kp.reshape(-1, num_heads, head_dim).unfold(0, span, block)  # [nb, h, d, span] (view)
    vb = vp.reshape(-1, num_heads, head_dim).unfold(0, span, block).transpose(-1, -2)  # [nb, h, span, d] (view)
    logits = torch.matmul(qb, kb).mul_(1.0 / math.sqrt(head_dim))  # [nb, h, B, span]
    logits.masked_fill_(~_block_mask(length, window, block, n_blocks, qp.device), float("-inf"))
    weights = torch.softmax(logits, dim=-1)  # every row keeps at least its own column
    out = torch.matmul(weights, vb)  # [nb, h, B, d]
    return out.transpose(1, 2).reshape(n_blocks * block, dim)[:length]
