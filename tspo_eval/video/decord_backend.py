"""decord backend: decord's own frame index and batched decoding, behind guards for the files
decord mishandles (it would hang, or number frames differently from FFmpeg)."""
from __future__ import annotations

import re

import numpy as np

from tspo_eval.errors import VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.packets import read_packet_index
from tspo_eval.video.probe import StreamHeader, check_file, explain_open_error, probe

#: a frame time this far (seconds) before the stream start means decord indexed discarded packets
_BEFORE_START_S = 1e-3
#: decord's log prefix, "[20:41:55] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:218: "
_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def decord_message(exc: BaseException, limit: int = 200) -> str:
    """decord's error text on one line, without its timestamp/source-file prefixes."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    text = _LOG_PREFIX.sub("", lines[-1] if lines else type(exc).__name__).strip()
    return text[:limit]


class DecordUnsupported(VideoError):
    """A file decord cannot decode correctly (PyAV can); ``reason`` is the problem without the advice."""

    def __init__(self, path: object, reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"{reason}; use --decoder auto or pyav")


def _to_numpy(batch) -> np.ndarray:
    """decord returns its own NDArray, or a torch tensor when another library set the torch bridge."""
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.cpu().numpy()
    return np.asarray(batch)


class DecordReader(VideoReader):
    """``decord.VideoReader`` on the CPU; the header is probed with PyAV first, so unusable files
    get the same clear :class:`VideoError` as with the other backends.

    Guards, checked at open without decoding (from decord's own index, plus a PyAV packet
    index for streams with B-frames):

    * fewer packets than the container declares (data cut off): decord would decode up to the
      cut and then retry at the end of the file; raised as a truncated file, like PyAV does;
    * packets presented before the stream start (an MP4 edit list that drops lead-in frames, as
      left by cutting without re-encoding): decord counts those frames, which FFmpeg never
      outputs, so its frame numbers are shifted against every other decoder, and a seek into
      such a file spins forever at 100% CPU (measured: ``get_batch`` of a 1 fps grid on a
      300-frame file with 200 dropped frames had not returned after 120 s);
    * an open GOP (frames that follow a keyframe in decode order but are shown before it, as
      x265 writes by default with B-frames): decord places keyframes by decode order, so after a
      seek it returns frames up to a GOP away from the ones asked for (measured: frame 60 of a
      30-frame-GOP HEVC file came back as frame 30).

    Each raises :class:`VideoError` at once (:class:`DecordUnsupported` for the last two and for
    codecs decord's bundled FFmpeg cannot decode, such as AV1); ``decoder="auto"`` then decodes
    with PyAV.
    """

    name = "decord"

    def __init__(self, path: str, num_threads: int = 0, header: StreamHeader | None = None) -> None:
        import decord

        path = check_file(path)
        header = header or probe(path)
        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        except (decord.DECORDError, RuntimeError) as exc:
            raise _explain_decord_error(path, exc, header) from None
        n_frames = len(self._reader)
        starts = self._frame_starts(path, n_frames)
        _check_index(path, header, n_frames, starts)
        # B-frames: decode order differs from display order; check the GOP structure (one demux
        # pass, no decoding) and take exact float64 times from it
        self._index = read_packet_index(path) if header.has_b_frames else None
        if self._index is not None and self._index.leading:
            raise DecordUnsupported(
                path,
                f"open GOP ({self._index.leading} frames are shown before the keyframe they follow): "
                "decord's seeks would return frames up to a GOP away from the ones asked for",
            )
        super().__init__(
            make_metadata(path, n_frames, self._reader.get_avg_fps(), header.width, header.height, self.name)
        )
        self._starts = starts

    def _frame_starts(self, path: str, n_frames: int) -> np.ndarray:
        """float64 [n_frames]: decord's presentation time of each frame (seconds from the stream start)."""
        import decord

        if n_frames <= 0:
            return np.zeros(0, dtype=np.float64)
        try:
            stamps = np.asarray(self._reader.get_frame_timestamp(np.arange(n_frames)), dtype=np.float64)
        except (decord.DECORDError, RuntimeError, IndexError) as exc:
            raise VideoError(path, f"decord could not read its frame index ({decord_message(exc)})") from None
        return stamps.reshape(n_frames, -1)[:, 0]

    def _load_frame_times(self) -> np.ndarray:
        if self._index is not None and self._index.n_frames == self.metadata.n_frames:
            return self._index.frame_times()
        # decord keeps its index times as float32: within 0.25 ms for the first hour
        return self._starts - self._starts[0]

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        import decord

        try:
            frames = _to_numpy(self._reader.get_batch(indices.tolist()))
        except (decord.DECORDError, RuntimeError) as exc:
            raise VideoError(self.metadata.path, f"decoding failed ({decord_message(exc)})") from None
        return np.ascontiguousarray(frames, dtype=np.uint8)

    def pause(self) -> None:
        """Stop decord's read-ahead before the caller goes idle.

        decord keeps decoding ahead in a background thread and queues every decoded frame while
        nobody reads (decord issues #157, #208): hundreds of MiB for a few seconds of idling.  A
        seek stops and flushes that.  Only ``seek(0)`` is safe: decord's inexact ``seek(n)``
        records position n while the decoder sits at the keyframe before n, so later frames come
        out shifted.  The next read then restarts at the keyframe before its first frame.
        """
        if not self._closed and self._reader is not None:
            self._reader.seek(0)

    def close(self) -> None:
        if not self._closed and getattr(self, "_reader", None) is not None:
            del self._reader
            self._reader = None
        super().close()


def _check_index(path: str, header: StreamHeader, n_frames: int, starts: np.ndarray) -> None:
    """Refuse (:class:`VideoError`) the files decord cannot decode reliably; see :class:`DecordReader`."""
    if header.declared_frames and 0 < n_frames < header.declared_frames:
        raise VideoError(
            path,
            f"truncated file: the container declares {header.declared_frames} frames but only {n_frames} are present",
        )
    early = int(np.count_nonzero(starts < -_BEFORE_START_S))
    if early:
        raise DecordUnsupported(
            path,
            f"{early} packets lie before the stream start (an edit list drops them, as after cutting without "
            "re-encoding): decord would count them as frames, shifting frame numbers, and can hang seeking here",
        )


def _explain_decord_error(path: str, exc: BaseException, header: StreamHeader) -> VideoError:
    message = str(exc)
    if "av_read_frame" in message:
        return VideoError(path, "truncated or corrupt file (decord could not read all packets)")
    if "cannot find video stream" in message or "codec" in message.lower():
        codec = header.codec_long_name or header.codec
        return DecordUnsupported(path, f"decord's bundled FFmpeg has no decoder for this video's codec ({codec})")
    return explain_open_error(path, exc)
