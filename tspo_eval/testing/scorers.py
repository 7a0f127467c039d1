"""A frame scorer by delegation, for tests and tools that wrap a real scorer (to count or time calls)."""
from __future__ import annotations

from typing import Any


class DelegatingScorer:
    """Every member of :class:`tspo_eval.agent.scorer.Scorer`, delegated to ``inner``.

    ``name``, ``fingerprint``, ``encoder_fingerprint`` and ``device`` are copied at construction
    (set ``device`` to None for "unknown"); subclasses override the methods they watch.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.fingerprint = inner.name, inner.fingerprint
        self.encoder_fingerprint, self.device = inner.encoder_fingerprint, inner.device

    def encode_frames(self, frames, batch_size: int = 32):
        """uint8 ``[N, H, W, 3]`` -> features ``[N, D]``."""
        return self.inner.encode_frames(frames, batch_size=batch_size)

    def encode_text(self, question: str):
        """Text features ``[1, D]``."""
        return self.inner.encode_text(question)

    def score(self, frame_features, text_features):
        """``[T, D]`` and ``[1, D]`` -> scores ``[T]``."""
        return self.inner.score(frame_features, text_features)

    def select(self, scores, num_frames: int = 64, strategy: str = "topk"):
        """Positions of the chosen candidates."""
        return self.inner.select(scores, num_frames, strategy)
