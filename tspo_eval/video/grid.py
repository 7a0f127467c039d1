"""The candidate grid of the TSPO spec and the uniform baseline's frame numbers."""
from __future__ import annotations

import math

import numpy as np

from tspo_eval.errors import InputError
from tspo_eval.video.metadata import VideoMetadata


def candidate_stride(avg_fps: float, fps: float = 1.0) -> int:
    """Source frames between two candidates: ``max(1, round(avg_fps / fps))``.

    ``fps`` is the candidate rate (1.0 in TSPO); it must be a positive finite number.
    """
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise InputError(f"candidate fps must be a positive number, got {fps!r}")
    avg = float(avg_fps)
    if not math.isfinite(avg) or avg <= 0:
        raise InputError(f"video frame rate must be a positive number, got {avg_fps!r}")
    return max(1, int(round(avg / fps)))


def candidate_grid(metadata: VideoMetadata, fps: float = 1.0) -> np.ndarray:
    """Source frame numbers of the candidates: int64 [T] = ``range(0, n_frames, stride)``."""
    stride = candidate_stride(metadata.avg_fps, fps)
    return np.arange(0, metadata.n_frames, stride, dtype=np.int64)


def uniform_frame_indices(n_frames: int, num_frames: int) -> np.ndarray:
    """Baseline frame numbers: ``round(linspace(0, n_frames-1, num_frames))``, unique, int64 [<=K]."""
    if int(num_frames) <= 0:
        raise InputError(f"number of frames must be positive, got {num_frames}")
    if int(n_frames) <= 0:
        return np.zeros(0, dtype=np.int64)
    if num_frames >= n_frames:
        return np.arange(n_frames, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_frames - 1, int(num_frames))).astype(np.int64))
