"""Needle items synthesised on the fly from cached features (``--needles``): no decoding for the agent.

A "specific" item's video is cut into clips of ``clip_len`` consecutive candidates (at most
``max_target_clips`` of them, a window around the first ground-truth span when there is one);
those clips, in their order, are placed at random slots among ``n_distractors`` clips of
``clip_len`` consecutive candidates taken from other training videos.  The composite's candidate
``t`` is shown to the answerer at ``t / fps`` seconds; the target clips are the mask R_T and the
oracle use (as TSPO's needle videos: 1-4 target clips of 50 frames among 12 others).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tspo_eval.training.data import Candidates, Span

CLIP_LEN = 50
N_DISTRACTORS = 12
MAX_TARGET_CLIPS = 4


def _target_window(target: Candidates, spans: Sequence[Span], clip_len: int, max_clips: int) -> tuple[int, int]:
    """(first, stop) candidate positions of the target part kept in the composite."""
    length = len(target.frames)
    n_clips = -(-length // clip_len)
    if n_clips <= max_clips:
        return 0, length
    anchor = 0
    if spans:
        inside = np.flatnonzero(target.times >= float(spans[0][0]))
        anchor = int(inside[0]) if inside.size else 0
    first_clip = min(anchor // clip_len, n_clips - max_clips)
    return first_clip * clip_len, min(length, (first_clip + max_clips) * clip_len)


def compose_needle(target: Candidates, spans: Sequence[Span], pool: Sequence[Candidates], generator: torch.Generator,
                   *, fps: float = 1.0, clip_len: int = CLIP_LEN, n_distractors: int = N_DISTRACTORS,
                   max_target_clips: int = MAX_TARGET_CLIPS) -> tuple[Candidates, list[Span]]:
    """The composite candidates and the target clips' spans (seconds, composite time).

    Args:
        target: the item's own candidates.
        pool: candidates of other videos (distractor sources; ``target`` itself is skipped).
        generator: decides slots, distractor videos and offsets (reproducible per prompt).
    """
    others = [c for c in pool if c.video != target.video and len(c.frames)]
    if not others:
        raise ValueError("needle items need at least one other training video")
    lo, hi = _target_window(target, spans, clip_len, max_target_clips)
    target_clips = [(target, np.arange(s, min(s + clip_len, hi))) for s in range(lo, hi, clip_len)]
    slots = n_distractors + len(target_clips)
    target_slots = set(torch.randperm(slots, generator=generator)[: len(target_clips)].tolist())
    parts: list[tuple[Candidates, np.ndarray, bool]] = []
    queue = iter(target_clips)
    for slot in range(slots):
        if slot in target_slots:
            cands, rows = next(queue)
            parts.append((cands, rows, True))
            continue
        source = others[int(torch.randint(len(others), (1,), generator=generator))]
        n = min(clip_len, len(source.frames))
        start = int(torch.randint(len(source.frames) - n + 1, (1,), generator=generator))
        parts.append((source, np.arange(start, start + n), False))
    sources: list[str] = []
    frames, source_index, feats, mask = [], [], [], []
    for cands, rows, is_target in parts:
        for j, path in enumerate(cands.sources):
            if path not in sources:
                sources.append(path)
        local = np.asarray([sources.index(p) for p in cands.sources], dtype=np.int64)
        frames.append(cands.frames[rows])
        source_index.append(local[cands.source_index[rows]])
        feats.append(cands.features[torch.as_tensor(rows)])
        mask.append(np.full(len(rows), is_target))
    total = int(sum(len(f) for f in frames))
    times = np.arange(total, dtype=np.float64) / float(fps)
    is_target = np.concatenate(mask)
    composite = Candidates(video=f"needle:{target.video}", frames=np.concatenate(frames), times=times,
                           features=torch.cat(feats), duration=total / float(fps), sources=sources,
                           source_index=np.concatenate(source_index))
    spans: list[Span] = []
    start = None
    for t, flag in enumerate(is_target.tolist() + [False]):
        if flag and start is None:
            start = t
        elif not flag and start is not None:
            spans.append((times[start], times[t - 1]))
            start = None
    return composite, spans
