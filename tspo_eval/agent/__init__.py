"""The TSPO temporal agent, the training-free CLIP baseline scorer and the selection strategies.

Heavy imports (transformers, open_clip) happen only when a model is loaded.
"""
from __future__ import annotations

import os

import torch

from tspo_eval.agent.clip_scorer import ClipScorer
from tspo_eval.agent.scorer import Scorer, check_scorer
from tspo_eval.agent.selection import STRATEGIES, select_positions
from tspo_eval.agent.temporal_agent import DEFAULT_AGENT, TemporalAgent
from tspo_eval.agent.text import question_stem
from tspo_eval.errors import InputError
from tspo_eval.selector_options import SCORERS


def load_scorer(
    scorer: str = "tspo",
    agent: str | os.PathLike = DEFAULT_AGENT,
    clip_model: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> TemporalAgent | ClipScorer:
    """A frame scorer (a :class:`~tspo_eval.agent.scorer.Scorer`) by name.

    - ``"tspo"``: :class:`TemporalAgent` from ``agent``; ``clip_model`` is then the CLIP folder/hub id
      for a training checkpoint that carries none.
    - ``"clip"``: :class:`ClipScorer` over ``clip_model`` (HF CLIP or ``open_clip:...``), or over the
      CLIP inside ``agent`` when ``clip_model`` is None (same features as the agent: shared cache).

    Raises:
        InputError: unknown scorer, or an open_clip model given to the TSPO agent.
    """
    if scorer == "tspo":
        if clip_model is not None and str(clip_model).startswith("open_clip:"):
            raise InputError("the TSPO agent needs its Hugging Face CLIP; open_clip models serve only --scorer clip")
        return TemporalAgent.from_pretrained(agent, device=device, dtype=dtype, clip_path=clip_model)
    if scorer == "clip":
        return ClipScorer.from_spec(clip_model if clip_model is not None else agent, device=device, dtype=dtype)
    raise InputError(f"unknown scorer {scorer!r}; choose one of {', '.join(SCORERS)}")


__all__ = [
    "STRATEGIES",
    "SCORERS",
    "ClipScorer",
    "Scorer",
    "TemporalAgent",
    "check_scorer",
    "load_scorer",
    "question_stem",
    "select_positions",
]
