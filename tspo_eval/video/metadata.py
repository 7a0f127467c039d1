"""Video metadata shared by every decoding backend."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tspo_eval.errors import VideoError


@dataclass(frozen=True)
class VideoMetadata:
    """What the candidate grid needs to know about a video.

    ``n_frames`` counts decodable frames at the native rate (0-based frame numbers
    ``0 .. n_frames-1``); ``duration = n_frames / avg_fps`` seconds.
    """

    path: str
    n_frames: int
    avg_fps: float
    duration: float
    width: int
    height: int
    decoder: str

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return asdict(self)


def make_metadata(path: str, n_frames: int, avg_fps: float, width: int, height: int, decoder: str) -> VideoMetadata:
    """Validate the raw numbers a backend read and build :class:`VideoMetadata`.

    Raises :class:`VideoError` naming ``path`` for a frame rate that is 0, negative, NaN or
    infinite, for a video without frames and for a frame without pixels.
    """
    try:
        fps = float(avg_fps)
    except (TypeError, ValueError):
        raise VideoError(path, f"unreadable frame rate in the metadata ({avg_fps!r})") from None
    if not math.isfinite(fps) or fps <= 0:
        raise VideoError(path, f"invalid frame rate in the metadata ({avg_fps!r} fps): cannot build the candidate grid")
    n = int(n_frames)
    if n <= 0:
        raise VideoError(path, "the video stream has no frames")
    if int(width) <= 0 or int(height) <= 0:
        raise VideoError(path, f"invalid frame size {width}x{height}")
    return VideoMetadata(
        path=str(path),
        n_frames=n,
        avg_fps=fps,
        duration=n / fps,
        width=int(width),
        height=int(height),
        decoder=decoder,
    )
