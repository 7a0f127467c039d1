"""Selection-only evaluation during training: top-K span hit rate on a held-out set (no VLM)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from tspo_eval.agent.selection import select_positions
from tspo_eval.leaderboard.span_hits import summarize
from tspo_eval.training.data import CandidateStore, TrainingItem
from tspo_eval.training.policy import trainable_scores


@torch.no_grad()
def span_hit_rate(head: nn.Module, items: Sequence[TrainingItem], store: CandidateStore,
                  text_features: Callable[[str], Tensor], num_frames: int, strategy: str = "topk") -> dict[str, float]:
    """``{"hit_rate", "frame_fraction", "n"}`` of the head's top-K selection over the items with spans.

    hit rate: questions with at least one chosen frame inside a span; frame fraction: chosen
    frames inside a span / chosen frames (as the leaderboard's selection-only board).
    """
    times, spans = {}, {}
    for item in items:
        if not item.time_spans:
            continue
        cands = store.get(item.video)
        scores = trainable_scores(head, cands.features, text_features(item.question)).float().cpu()
        if len(scores) <= num_frames:
            chosen = torch.arange(len(scores))
        else:
            chosen = select_positions(scores, num_frames, strategy)
        times[item.question_id] = cands.times[chosen.numpy()].tolist()
        spans[item.question_id] = list(item.time_spans)
    summary = summarize(times, spans)
    return {"hit_rate": summary.hit_rate, "frame_fraction": summary.frame_fraction, "n": len(summary.question_ids)}


def uniform_hit_rate(items: Sequence[TrainingItem], store: CandidateStore, num_frames: int) -> dict[str, float]:
    """The same numbers for uniform sampling of K candidates (the baseline)."""
    times, spans = {}, {}
    for item in items:
        if not item.time_spans:
            continue
        cands = store.get(item.video)
        chosen = select_positions(torch.zeros(len(cands.times)), min(num_frames, len(cands.times)), "uniform")
        times[item.question_id] = cands.times[chosen.numpy()].tolist()
        spans[item.question_id] = list(item.time_spans)
    summary = summarize(times, spans)
    return {"hit_rate": summary.hit_rate, "frame_fraction": summary.frame_fraction, "n": len(summary.question_ids)}
