"""decord backend (the default): decord's own frame index and batched decoding."""
from __future__ import annotations

import numpy as np

from tspo_eval.errors import VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.probe import check_file, explain_open_error, probe


def _to_numpy(batch) -> np.ndarray:
    """decord returns its own NDArray, or a torch tensor when another library set the torch bridge."""
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.cpu().numpy()
    return np.asarray(batch)


class DecordReader(VideoReader):
    """``decord.VideoReader`` on the CPU; the header is probed with PyAV first, so unusable files
    get the same clear :class:`VideoError` as with the other backends."""

    name = "decord"

    def __init__(self, path: str, num_threads: int = 0) -> None:
        import decord

        path = check_file(path)
        header = probe(path)
        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        except (decord.DECORDError, RuntimeError) as exc:
            raise _explain_decord_error(path, exc) from None
        self._reader_closed = False
        super().__init__(
            make_metadata(path, len(self._reader), self._reader.get_avg_fps(), header.width, header.height, self.name)
        )

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        import decord

        try:
            frames = _to_numpy(self._reader.get_batch(indices.tolist()))
        except (decord.DECORDError, RuntimeError) as exc:
            raise VideoError(self.metadata.path, f"decoding failed ({str(exc).strip().splitlines()[-1][:200]})") from None
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


def _explain_decord_error(path: str, exc: BaseException) -> VideoError:
    message = str(exc)
    if "av_read_frame" in message:
        return VideoError(path, "truncated or corrupt file (decord could not read all packets)")
    return explain_open_error(path, exc)
