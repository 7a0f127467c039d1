"""The TSPO selector head as an ``nn.Module`` whose parameter names match the checkpoint."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tspo_eval.agent.positional import positional_encoding
from tspo_eval.agent.window_attention import (
    attention_on_padded,
    padded_layout,
    window_reach,
)

FEATURE_DIM = 768
NUM_HEADS = 8
WINDOW = 12
TAU = 0.025
#: rows of the head computed at a time: bounds its temporaries (about 40 MiB) while keeping the GEMMs efficient
ROW_CHUNK = 1024


def cosine_to(rows: Tensor, vector: Tensor, eps: float = 1e-8) -> Tensor:
    """``cos(rows[t], vector)`` ``[T]`` for ``rows`` ``[T, D]``, ``vector`` ``[1, D]``, without ``[T, D]`` temporaries."""
    dots = (rows @ vector.reshape(-1, 1)).squeeze(1)
    norms = torch.linalg.vector_norm(rows, dim=1) * torch.linalg.vector_norm(vector)
    return dots / norms.clamp_min(eps)


class TemporalAttention(nn.Module):
    """Windowed multi-head self-attention (``Self_q/k/v``); ``ffn_o`` is kept for loading but unused."""

    def __init__(self, dim: int = FEATURE_DIM, num_heads: int = NUM_HEADS, window: int = WINDOW) -> None:
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.Self_q = nn.Linear(dim, dim)
        self.Self_k = nn.Linear(dim, dim)
        self.Self_v = nn.Linear(dim, dim)
        self.ffn_o = nn.Linear(dim, dim)  # present in the checkpoint, never used in the forward pass

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[T, dim]`` -> heads concatenated ``[T, dim]`` (no output projection)."""
        length, dim = x.shape
        left, _ = window_reach(self.window)
        block, query_rows, key_rows = padded_layout(length, self.window)
        # project straight into the zero-padded buffers the blocked attention reads (no pad copies)
        qp = x.new_zeros(query_rows, dim)
        kp, vp = x.new_zeros(key_rows, dim), x.new_zeros(key_rows, dim)
        torch.addmm(self.Self_q.bias, x, self.Self_q.weight.t(), out=qp[:length])
        torch.addmm(self.Self_k.bias, x, self.Self_k.weight.t(), out=kp[left : left + length])
        torch.addmm(self.Self_v.bias, x, self.Self_v.weight.t(), out=vp[left : left + length])
        return attention_on_padded(qp, kp, vp, length, self.num_heads, self.window, block)


class SelectorHead(nn.Module):
    """PE + windowed MHA + MLP + residual; logits ``(cos(F_e, F_t) + cos(F_t, F_f)) / tau``.

    Always computes in float32, whatever dtype the CLIP towers run in.
    """

    def __init__(
        self, dim: int = FEATURE_DIM, num_heads: int = NUM_HEADS, window: int = WINDOW, tau: float = TAU
    ) -> None:
        super().__init__()
        self.dim, self.tau = dim, tau
        self.temporal = TemporalAttention(dim, num_heads, window)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def prepare(self, features: Tensor) -> Tensor:
        """``features`` ``[T, dim]`` (or ``[dim]``) as float32 on the head's device; ValueError on a wrong size."""
        param = self.mlp[0].weight
        out = features.to(device=param.device, dtype=torch.float32)
        if out.ndim == 1:
            out = out[None]
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise ValueError(f"selector head expects features of size {self.dim}, got shape {tuple(features.shape)}")
        return out

    def embed(self, frame_features: Tensor, chunk: int = ROW_CHUNK) -> Tensor:
        """``F_e = MLP(WindowMHA(F_f + PE)) + F_f``: float32 ``[T, dim]``; independent of the question.

        Rows are computed ``chunk`` at a time, each chunk with the window's halo (``left``/``right``
        rows) around it, so the temporaries are bounded by ``chunk`` whatever T is; a row's window
        never leaves its chunk + halo, and the halo rows' own outputs are discarded.
        """
        f_f = self.prepare(frame_features)
        length = f_f.shape[0]
        left, right = window_reach(self.temporal.window)
        f_e = torch.empty_like(f_f)
        for start in range(0, length, chunk):
            stop = min(start + chunk, length)
            lo, hi = max(0, start - left), min(length, stop + right)
            x = f_f[lo:hi] + positional_encoding(hi - lo, self.dim, f_f.device, start=lo, total=length)
            h = self.temporal(x)[start - lo : stop - lo]
            f_e[start:stop] = self.mlp(h).add_(f_f[start:stop])
        return f_e

    def logits(self, f_e: Tensor, frame_features: Tensor, text_features: Tensor) -> Tensor:
        """``(cos(F_e, F_t) + cos(F_t, F_f)) / tau``: float32 ``[T]``."""
        f_f, f_t = self.prepare(frame_features), self.prepare(text_features).reshape(1, -1)
        s = cosine_to(f_e, f_t) + cosine_to(f_f, f_t)
        return s / self.tau

    def forward(self, frame_features: Tensor, text_features: Tensor) -> Tensor:
        """``F_f`` ``[T, dim]``, ``F_t`` ``[1, dim]`` (or ``[dim]``) -> logits ``[T]`` float32."""
        return self.logits(self.embed(frame_features), frame_features, text_features)


class EmbeddingCache:
    """``F_e`` of the last frame features seen, reused while the same features come back.

    ``F_e`` does not depend on the question, so the second and later questions on a video cost
    two cosines instead of five ``T x 768 x 768`` products.  The reuse test is an exact comparison
    with a private copy of the features (cheap next to the head itself).
    """

    def __init__(self, head: SelectorHead) -> None:
        self.head = head
        self._entry: tuple[Tensor, Tensor] | None = None  # (F_f copy, F_e)

    def __call__(self, f_f: Tensor) -> Tensor:
        """``F_e`` ``[T, dim]`` for ``f_f`` (float32 on the head's device, see :meth:`SelectorHead.prepare`)."""
        entry = self._entry
        if entry is not None and entry[0].shape == f_f.shape and torch.equal(entry[0], f_f):
            return entry[1]
        f_e = self.head.embed(f_f)
        self._entry = (f_f.clone(), f_e)
        return f_e

    def clear(self) -> None:
        self._entry = None
