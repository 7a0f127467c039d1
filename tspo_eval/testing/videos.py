"""Small real video files for tests and benchmarks, encoded with PyAV."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

FramePainter = Callable[[int], np.ndarray]


def frame_pattern(index: int, height: int, width: int, n_frames: int) -> np.ndarray:
    """Default frame ``index``: a brightness ramp over time plus a moving bar, uint8 [H, W, 3].

    Frames differ from each other, so a wrong frame number shows up in pixel values
    (``frame[0, 0, 0] ~= round(255 * index / max(n_frames - 1, 1))`` before compression).
    """
    level = int(round(255 * index / max(n_frames - 1, 1)))
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = level
    frame[..., 1] = 255 - level
    frame[..., 2] = (index * 37) % 256
    bar = (index * 3) % max(width - 4, 1)
    frame[height // 4 : 3 * height // 4, bar : bar + 4, :] = 255
    return frame


def write_test_video(
    path: str | Path,
    *,
    n_frames: int = 90,
    fps: float = 30.0,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    painter: FramePainter | None = None,
    gop: int = 30,
) -> Path:
    """Encode ``n_frames`` frames at ``fps`` into ``path`` (H.264 in MP4 by default) and return the path.

    ``painter(i) -> uint8 [H, W, 3]`` draws frame ``i``; the default is :func:`frame_pattern`.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "g": str(gop), "bf": "0"}
        for i in range(n_frames):
            pixels = painter(i) if painter else frame_pattern(i, height, width, n_frames)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
