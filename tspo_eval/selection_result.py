"""The frames chosen for one question on one video: :class:`SelectionResult`.

A result keeps what was decided (the candidates with their presentation times, the chosen
positions, the scores), the video's metadata and the provenance (strategy, scorer, fingerprints,
decoder, cache hit); the chosen frame numbers and times follow from those and are properties,
so ``frame_indices == [candidate_indices[p] for p in selected_positions]`` always holds.
Every producer builds one with :meth:`SelectionResult.from_candidates` (keyword-only).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tspo_eval.video.grid import candidate_stride
from tspo_eval.video.metadata import VideoMetadata

if TYPE_CHECKING:
    from torch import Tensor

#: the keys of :meth:`SelectionResult.to_dict`, in order (the CLI's ``--json`` and older tools rely on them)
RESULT_KEYS: tuple[str, ...] = (
    "video", "question", "frame_indices", "timestamps", "candidate_indices", "scores", "selected_positions",
    "strategy", "scorer", "num_candidates", "fps", "avg_fps", "n_frames", "agent_fingerprint", "clip_fingerprint",
    "feature_cache_hit", "candidate_timestamps", "decoder",
)
#: decimals kept of a presentation time (microseconds)
TIME_DECIMALS = 6


@dataclass(frozen=True, kw_only=True)
class SelectionResult:
    """Frames chosen for one question on one video (all frame numbers are source frame numbers).

    Attributes:
        video: the video path as the caller gave it.
        question: the question text ("" for the scorer-free uniform baseline).
        candidate_indices: ``[T]`` frame numbers the choice was made among, increasing: the
            ``fps`` candidate grid, or the given frames themselves when they are not on that grid
            (frames from an index file, see :func:`tspo_eval.selection.given_selection`).
        candidate_timestamps: ``[T]`` seconds, each candidate's presentation time (pts) relative
            to frame 0 (true times under a variable frame rate).
        scores: ``[T]`` one per candidate, or ``[]`` when no scorer chose (uniform, index frames).
        selected_positions: ``[K]`` positions into the candidates, increasing (temporal order).
        strategy: how the positions were chosen (``topk``, ``bin-max``, ``aks``, ``uniform``, or
            the strategy an index file records).
        scorer: scorer name (``tspo``, ``clip``, ``uniform``, or an index file's).
        fps: the candidate rate of the grid (1.0 in TSPO).
        metadata: the video's :class:`~tspo_eval.video.VideoMetadata` (``decoder`` = the backend
            that read it).
        agent_fingerprint: the scorer's ``fingerprint`` (weights + preprocessing), "" without one.
        encoder_fingerprint: the scorer's image-encoder fingerprint (the feature-cache key part);
            serialized as ``clip_fingerprint`` (the name older files use).
        feature_cache_hit: the candidate features came from a cache (disk or memory).
    """

    video: str
    question: str
    candidate_indices: list[int]
    candidate_timestamps: list[float]
    scores: list[float]
    selected_positions: list[int]
    strategy: str
    scorer: str
    fps: float
    metadata: VideoMetadata
    agent_fingerprint: str = ""
    encoder_fingerprint: str = ""
    feature_cache_hit: bool = False

    def __post_init__(self) -> None:
        where = f"selection result for {self.video}"
        candidates, n = self.candidate_indices, len(self.candidate_indices)
        if len(self.candidate_timestamps) != n:
            raise ValueError(f"{where}: {len(self.candidate_timestamps)} candidate times for {n} candidates")
        if self.scores and len(self.scores) != n:
            raise ValueError(f"{where}: {len(self.scores)} scores for {n} candidates (one each, or none)")
        if any(b < a for a, b in zip(candidates, candidates[1:])):
            raise ValueError(f"{where}: candidate frame numbers are not in temporal order")
        if candidates and not 0 <= candidates[0] <= candidates[-1] < self.metadata.n_frames:
            raise ValueError(f"{where}: candidates outside frames 0..{self.metadata.n_frames - 1}")
        positions = self.selected_positions
        if any(not 0 <= p < n for p in positions):
            raise ValueError(f"{where}: selected positions {positions} outside 0..{n - 1}")
        if any(b < a for a, b in zip(positions, positions[1:])):
            raise ValueError(f"{where}: selected positions {positions} are not in temporal order")

    @classmethod
    def from_candidates(
        cls,
        *,
        video: str,
        question: str,
        metadata: VideoMetadata,
        candidates: Sequence[int] | np.ndarray,
        candidate_times: Sequence[float] | np.ndarray,
        positions: Sequence[int] | np.ndarray | Tensor,
        scores: Sequence[float] | np.ndarray | Tensor = (),
        strategy: str,
        scorer: str,
        fps: float,
        agent_fingerprint: str = "",
        encoder_fingerprint: str = "",
        feature_cache_hit: bool = False,
    ) -> SelectionResult:
        """The one constructor of every producer.

        Args:
            candidates: int ``[T]`` source frame numbers, increasing.
            candidate_times: float ``[T]`` their presentation times in seconds (kept to microseconds).
            positions: int ``[K]`` positions into ``candidates`` (a LongTensor from a scorer is fine).
            scores: float ``[T]``, or empty when no scorer chose.
            Other arguments: see the class attributes.

        Raises:
            ValueError: the parts do not fit together (a producer's bug, named with the video).
        """
        return cls(
            video=str(video),
            question=str(question),
            candidate_indices=[int(i) for i in _as_list(candidates)],
            candidate_timestamps=[round(float(t), TIME_DECIMALS) for t in _as_list(candidate_times)],
            scores=[float(s) for s in _as_list(scores)],
            selected_positions=[int(p) for p in _as_list(positions)],
            strategy=str(strategy),
            scorer=str(scorer),
            fps=float(fps),
            metadata=metadata,
            agent_fingerprint=str(agent_fingerprint or ""),
            encoder_fingerprint=str(encoder_fingerprint or ""),
            feature_cache_hit=bool(feature_cache_hit),
        )

    # -- derived ----------------------------------------------------------------------------
    @property
    def frame_indices(self) -> list[int]:
        """``[K]`` chosen source frame numbers, temporal order: ``candidate_indices[selected_positions]``."""
        return [self.candidate_indices[p] for p in self.selected_positions]

    @property
    def timestamps(self) -> list[float]:
        """``[K]`` seconds, presentation time of each chosen frame: ``candidate_timestamps[selected_positions]``."""
        return [self.candidate_timestamps[p] for p in self.selected_positions]

    @property
    def num_candidates(self) -> int:
        """``T``, the number of candidates."""
        return len(self.candidate_indices)

    @property
    def avg_fps(self) -> float:
        return float(self.metadata.avg_fps)

    @property
    def n_frames(self) -> int:
        return int(self.metadata.n_frames)

    @property
    def decoder(self) -> str:
        """The backend that read the video (``decord``, ``pyav``, ``torchcodec``)."""
        return self.metadata.decoder

    @property
    def candidate_stride(self) -> int:
        """Source frames between two candidates of the video's ``fps`` grid: ``round(avg_fps / fps)``."""
        return candidate_stride(self.metadata.avg_fps, self.fps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the keys :data:`RESULT_KEYS` in that order (plain ints, floats,
        strings, lists); the encoder fingerprint goes under ``clip_fingerprint``."""
        values = {name: getattr(self, name) for name in RESULT_KEYS if name != "clip_fingerprint"}
        values["clip_fingerprint"] = self.encoder_fingerprint
        return {name: _copy(values[name]) for name in RESULT_KEYS}


def _as_list(values: Sequence[Any] | np.ndarray | Tensor) -> list[Any]:
    """A flat Python list of an ndarray, a tensor or a sequence."""
    if hasattr(values, "detach"):  # a tensor
        return values.detach().cpu().reshape(-1).tolist()
    if isinstance(values, np.ndarray):
        return values.reshape(-1).tolist()
    return list(values)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
