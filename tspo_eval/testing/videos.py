"""Small real video files for tests and benchmarks, encoded with PyAV.

Besides constant-rate H.264, :func:`write_test_video` writes the other codecs tspo-eval must
read (AV1, VP9, HEVC; the container follows the file extension: .mp4, .webm, .mkv), B-frames,
and variable frame rates (``frame_times``: each frame's presentation time).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

FramePainter = Callable[[int], np.ndarray]

#: encoders tried, in order, for each codec family (PyAV's wheels ship all of them)
ENCODERS = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "vp9": ("libvpx-vp9",),
    "av1": ("libaom-av1", "libsvtav1", "librav1e"),
}
#: ticks per second of the codec time base used for variable-frame-rate files
VFR_TICKS = 90000


def available_encoder(family: str) -> str | None:
    """The first encoder of codec ``family`` (a key of :data:`ENCODERS`) this PyAV build has, or None."""
    import av

    return next((name for name in ENCODERS[family] if name in av.codecs_available), None)


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


def _encoder_options(codec: str, gop: int, bframes: int) -> dict[str, str]:
    """Fast settings for tiny test files (quality does not matter, speed and determinism do)."""
    if codec == "libx264":
        return {"preset": "ultrafast", "g": str(gop), "bf": str(bframes)}
    if codec == "libx265":
        return {"preset": "ultrafast", "g": str(gop), "bf": str(bframes), "x265-params": "log-level=error"}
    if codec == "libvpx-vp9":
        return {"deadline": "realtime", "cpu-used": "8", "g": str(gop)}
    if codec == "libaom-av1":
        return {"cpu-used": "8", "usage": "realtime", "g": str(gop)}
    if codec == "libsvtav1":
        return {"preset": "12", "g": str(gop), "svtav1-params": "log-level=0"}
    return {"g": str(gop)}


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
    bframes: int = 0,
    frame_times: Sequence[float] | None = None,
    dropped_lead_in: int = 0,
) -> Path:
    """Encode ``n_frames`` frames at ``fps`` into ``path`` (H.264 in MP4 by default) and return the path.

    Args:
        codec: a PyAV encoder name (``libx264``, ``libx265``, ``libvpx-vp9``, ``libaom-av1``, ...);
            the container follows the extension of ``path``.
        painter: ``painter(i) -> uint8 [H, W, 3]`` draws frame ``i``; default :func:`frame_pattern`.
        gop: keyframe interval; bframes: B-frames between references (H.264/HEVC).
        frame_times: presentation time of each frame in seconds, increasing (``n_frames`` of
            them): a variable-frame-rate file; ``fps`` is then only the declared nominal rate.
        dropped_lead_in: give the first frames negative presentation times, so the MP4 muxer
            writes an edit list that drops them (as cutting a video without re-encoding does):
            FFmpeg decodes but never presents them, and the file shows ``n_frames - dropped_lead_in``.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if frame_times is not None and len(frame_times) != n_frames:
        raise ValueError(f"{len(frame_times)} frame times for {n_frames} frames")
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = _encoder_options(codec, gop, bframes)
        if frame_times is not None:
            stream.codec_context.time_base = Fraction(1, VFR_TICKS)
        elif dropped_lead_in:
            stream.codec_context.time_base = 1 / rate
        for i in range(n_frames):
            pixels = painter(i) if painter else frame_pattern(i, height, width, n_frames)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels, dtype=np.uint8), format="rgb24")
            if frame_times is not None:
                frame.pts = int(round(float(frame_times[i]) * VFR_TICKS))
                frame.time_base = Fraction(1, VFR_TICKS)
            elif dropped_lead_in:
                frame.pts, frame.time_base = i - int(dropped_lead_in), 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
