"""Check a video file and read its stream header with PyAV, turning every failure into a
:class:`VideoError` that names the file and the problem (used by all backends)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tspo_eval.errors import VideoError


@dataclass(frozen=True)
class StreamHeader:
    """Header facts of the first video stream (no frame decoded)."""

    width: int
    height: int
    declared_frames: int  # container's frame count; 0 when the format does not store it
    average_rate: float  # 0.0 when unknown
    codec: str  # FFmpeg's decoder name, e.g. "h264", "libdav1d"
    codec_long_name: str = ""  # e.g. "dav1d AV1 decoder by VideoLAN"
    has_b_frames: bool = False  # frames are reordered (B-frames): decode order differs from display order


def check_file(path: str | os.PathLike) -> str:
    """The path as ``str`` if it names a non-empty regular file; :class:`VideoError` otherwise."""
    p = Path(path)
    if not p.exists():
        raise VideoError(p, "file not found")
    if not p.is_file():
        raise VideoError(p, "not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise VideoError(p, f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise VideoError(p, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise VideoError(p, "permission denied")
    return str(p)


def _looks_like_text(path: str) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _has_mp4_signature(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(12)[4:8] == b"ftyp"


def explain_open_error(path: str, exc: BaseException) -> VideoError:
    """A :class:`VideoError` describing why a container could not be opened."""
    message = str(exc)
    if "moov atom not found" in message or "partial file" in message:
        return VideoError(path, "truncated or corrupt file (the MP4 index, 'moov atom', is missing)")
    if _has_mp4_signature(path):
        return VideoError(path, "truncated or corrupt MP4 file (the container index could not be read)")
    if _looks_like_text(path):
        return VideoError(path, "not a video file (it contains text)")
    first_line = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    return VideoError(path, f"not a readable video file ({first_line[:200]})")


def probe(path: str | os.PathLike) -> StreamHeader:
    """Open the container with PyAV, find the first video stream and read its header."""
    import av

    p = check_file(path)
    try:
        container = av.open(p)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise explain_open_error(p, exc) from None
    try:
        streams = [s for s in container.streams.video if s.codec_context is not None]
        if not streams:
            kinds = sorted({s.type for s in container.streams})
            if not kinds:
                raise VideoError(p, "no video stream (the container holds no streams)")
            hint = "; an audio-only file?" if kinds == ["audio"] else ""
            raise VideoError(p, f"no video stream (only {', '.join(kinds)} streams{hint})")
        stream = streams[0]
        rate = stream.average_rate
        return StreamHeader(
            width=int(stream.codec_context.width or 0),
            height=int(stream.codec_context.height or 0),
            declared_frames=int(stream.frames or 0),
            average_rate=float(rate) if rate else 0.0,
            codec=str(stream.codec_context.name),
            codec_long_name=str(getattr(stream.codec_context.codec, "long_name", "") or ""),
            has_b_frames=bool(getattr(stream.codec_context, "has_b_frames", False)),
        )
    finally:
        container.close()
