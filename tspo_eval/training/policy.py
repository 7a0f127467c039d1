"""The selector head as a sampling policy: differentiable scores, Gumbel-top-K frame sets, log-probabilities, loss.

All functions are pure tensor functions (no I/O, no global state); randomness comes only from the
``torch.Generator`` passed in, so a run is reproducible from its seeds.

Shapes: ``T`` candidates, ``K`` frames per set, ``G`` sets per prompt (the group), ``D`` feature size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tspo_eval.agent.positional import positional_encoding
from tspo_eval.agent.selector_head import SelectorHead, cosine_to
from tspo_eval.agent.window_attention import windowed_attention

LOGPROBS: tuple[str, ...] = ("first-draw", "plackett-luce")


def trainable_scores(head: SelectorHead, frame_features: Tensor, text_features: Tensor) -> Tensor:
    """``S = cos(F_e, F_t) + cos(F_f, F_t)``: float32 ``[T]`` with autograd through the head's weights.

    Same numbers as :meth:`SelectorHead.forward` times ``head.tau`` (the inference path writes into
    preallocated buffers and caches ``F_e``, which autograd cannot follow; this one does neither).

    Args:
        frame_features: ``F_f`` ``[T, D]`` (any float dtype/device; moved to the head's).
        text_features: ``F_t`` ``[1, D]`` or ``[D]``.
    """
    f_f = head.prepare(frame_features)
    f_t = head.prepare(text_features).reshape(1, -1)
    length = f_f.shape[0]
    x = f_f + positional_encoding(length, head.dim, f_f.device)
    attention = head.temporal
    h = windowed_attention(attention.Self_q(x), attention.Self_k(x), attention.Self_v(x),
                           attention.num_heads, attention.window)
    f_e = head.mlp(h) + f_f
    return cosine_to(f_e, f_t) + cosine_to(f_f, f_t)


@dataclass(frozen=True)
class FrameSets:
    """``G`` sampled frame sets of one prompt.

    Attributes:
        positions: int64 ``[G, K]``, candidate positions of each set in temporal order.
        draw_order: int64 ``[G, K]``, the same positions in the order they were drawn (needed by
            the exact Plackett-Luce log-probability).
    """

    positions: Tensor
    draw_order: Tensor


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Standard Gumbel(0, 1) samples, float32 on CPU (``-log(-log U)``, U kept inside (0, 1))."""
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    return (-torch.log(-torch.log(uniform.clamp(tiny, 1.0 - 1e-16)))).float()


def gumbel_top_k(logits: Tensor, num_frames: int, num_sets: int, generator: torch.Generator) -> FrameSets:
    """Sample ``num_sets`` frame sets of ``num_frames`` candidates without replacement from ``softmax(logits)``.

    Gumbel-top-K: add independent Gumbel(0, 1) noise to every logit and keep the K largest; the K
    indices in decreasing order of perturbed logit are distributed exactly as K successive draws
    without replacement (Plackett-Luce).

    Args:
        logits: ``z = S / tau`` ``[T]`` (no gradient is taken through the sampling).
        num_frames: K, ``1 <= K <= T``.
        num_sets: G.
        generator: the CPU generator that drives the noise.
    """
    length = int(logits.shape[-1])
    if not 1 <= num_frames <= length:
        raise ValueError(f"cannot draw {num_frames} of {length} candidates")
    noise = gumbel_noise((num_sets, length), generator)
    perturbed = logits.detach().float().cpu()[None, :] + noise
    draw_order = torch.topk(perturbed, num_frames, dim=1, sorted=True).indices
    positions = torch.sort(draw_order, dim=1).values
    return FrameSets(positions=positions, draw_order=draw_order)


def first_draw_terms(logits: Tensor, draw_order: Tensor) -> Tensor:
    """Per-frame log-probabilities ``log_softmax(z)[i_k]`` (TSPO's choice): ``[G, K]`` with grad.

    Args:
        logits: ``z`` ``[T]``.
        draw_order: int64 ``[G, K]`` (the order does not matter here).
    """
    log_p = torch.log_softmax(logits.float(), dim=-1)
    return log_p[draw_order.to(log_p.device)]


def plackett_luce_terms(logits: Tensor, draw_order: Tensor) -> Tensor:
    """Per-draw terms of the exact without-replacement log-probability: ``[G, K]`` with grad.

    ``term[g, k] = z[i_k] - logsumexp(z over candidates not drawn before step k)``; their sum over
    k is ``log P(i_1, ..., i_K)`` under Plackett-Luce sampling from ``softmax(z)``.
    """
    z = logits.float()
    order = draw_order.to(z.device)
    num_sets, k = order.shape
    length = z.shape[-1]
    # taken[g, k, t]: candidate t was drawn at a step before k
    onehot = torch.zeros(num_sets, k, length, dtype=torch.bool, device=z.device)
    onehot.scatter_(2, order[:, :, None], True)
    taken = torch.cumsum(onehot.to(torch.int32), dim=1) - onehot.to(torch.int32)
    masked = z[None, None, :].expand(num_sets, k, length).masked_fill(taken.bool(), float("-inf"))
    return z[order] - torch.logsumexp(masked, dim=-1)


def logprob_terms(logits: Tensor, draw_order: Tensor, kind: str = "first-draw") -> Tensor:
    """``[G, K]`` per-frame log-probability terms by ``kind`` (``first-draw`` | ``plackett-luce``)."""
    if kind == "first-draw":
        return first_draw_terms(logits, draw_order)
    if kind == "plackett-luce":
        return plackett_luce_terms(logits, draw_order)
    raise ValueError(f"unknown log-probability {kind!r}; choose one of {', '.join(LOGPROBS)}")


def set_logprob(logits: Tensor, draw_order: Tensor, kind: str = "first-draw") -> Tensor:
    """One number per set ``[G]``: the mean of the first-draw terms, or the exact PL log-probability (sum)."""
    terms = logprob_terms(logits, draw_order, kind)
    return terms.mean(dim=1) if kind == "first-draw" else terms.sum(dim=1)


def policy_loss(terms: Tensor, advantages: Tensor) -> Tensor:
    """TSPO's single-step loss ``-(1/G) sum_i A_i * mean_k exp(l_ik - stopgrad(l_ik))`` (a scalar).

    The ratio is 1 in value, so the loss value is ``-mean(A)`` and its gradient is
    ``-(1/G) sum_i A_i * mean_k grad l_ik``.

    Args:
        terms: ``l`` ``[G, K]`` with grad (see :func:`logprob_terms`).
        advantages: ``A`` ``[G]`` (constants).
    """
    ratio = torch.exp(terms - terms.detach())
    adv = advantages.detach().to(device=terms.device, dtype=terms.dtype)
    return -(adv * ratio.mean(dim=1)).mean()
