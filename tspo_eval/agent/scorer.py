"""What :class:`~tspo_eval.selection.FrameSelector` needs from a frame scorer, as a ``typing.Protocol``.

:class:`~tspo_eval.agent.temporal_agent.TemporalAgent` (TSPO) and
:class:`~tspo_eval.agent.clip_scorer.ClipScorer` (training-free CLIP baseline) satisfy it; so can
any other object with the same members (tests wrap a real scorer to count its calls).
The protocol is ``runtime_checkable``: ``isinstance(obj, Scorer)`` checks that every member is
present (not the signatures); :func:`check_scorer` turns a missing member into one clear error.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, Union, cast, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # torch / PIL are loaded by the scorers themselves
    import torch
    from PIL.Image import Image
    from torch import Tensor

#: frames handed to :meth:`Scorer.encode_frames`: uint8 ``[T, H, W, 3]`` RGB (ndarray or tensor), or PIL images
FrameBatch = Union[np.ndarray, "Tensor", Sequence["Image"]]


@runtime_checkable
class Scorer(Protocol):
    """A query-aware frame scorer.

    Attributes:
        name: short scorer name recorded in every result (``"tspo"``, ``"clip"``).
        fingerprint: identifies everything that makes the scores (weights, preprocessing, dtype);
            recorded as a result's ``agent_fingerprint``.
        encoder_fingerprint: identifies the image tower + image preprocessing + compute dtype only:
            the feature cache key (two scorers with one image encoder share cached features).
        device: where the image encoder runs; ``None`` when unknown (decoding then overlaps
            encoding, see :func:`tspo_eval.selection.overlap_decoding`).
    """

    name: str
    fingerprint: str
    encoder_fingerprint: str
    device: torch.device | None

    def encode_frames(self, frames: FrameBatch, batch_size: int = 32) -> Tensor:
        """Image features of ``T`` frames: float32 ``[T, D]`` on the CPU."""
        ...

    def encode_text(self, question: str) -> Tensor:
        """Text features of the question's stem: float32 ``[1, D]``; InputError for an empty stem."""
        ...

    def score(self, frame_features: Tensor, text_features: Tensor) -> Tensor:
        """One score per candidate: float32 ``[T]`` for frame features ``[T, D]`` and text ``[1, D]``."""
        ...

    def select(self, scores: Tensor, num_frames: int = 64, strategy: str = "topk") -> Tensor:
        """Positions (int64 ``[<=K]``, increasing = temporal order) of the chosen candidates."""
        ...


#: the members of :class:`Scorer` (attributes, then methods), read from the protocol itself
SCORER_MEMBERS: tuple[str, ...] = tuple(Scorer.__annotations__) + tuple(
    name for name, value in vars(Scorer).items() if callable(value) and not name.startswith("_")
)


def missing_scorer_members(obj: object) -> list[str]:
    """Names of :data:`SCORER_MEMBERS` that ``obj`` lacks (or has but cannot call, for the methods).

    Looked up with ``hasattr``, so members a delegating wrapper serves through ``__getattr__``
    count (Python 3.12's ``isinstance`` on protocols looks members up statically and would not
    see them).
    """
    methods = set(SCORER_MEMBERS) - set(Scorer.__annotations__)
    missing = []
    for name in SCORER_MEMBERS:
        if not hasattr(obj, name) or (name in methods and not callable(getattr(obj, name))):
            missing.append(name)
    return missing


def check_scorer(obj: object) -> Scorer:
    """``obj`` itself when it has every member of :class:`Scorer`.

    Raises:
        TypeError: naming the object's type and every member it lacks.
    """
    missing = missing_scorer_members(obj)
    if missing:
        raise TypeError(
            f"{type(obj).__name__} is not a frame scorer: it lacks {', '.join(missing)} "
            f"(a scorer has {', '.join(SCORER_MEMBERS)}; see tspo_eval.agent.scorer.Scorer)"
        )
    return cast(Scorer, obj)
