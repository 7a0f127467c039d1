"""The backend-independent reader interface."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from tspo_eval.errors import InputError, VideoError
from tspo_eval.video.metadata import VideoMetadata


class VideoReader:
    """An open video.  Use as a context manager; backends implement :meth:`_read_sorted`.

    ``metadata`` is read when the reader opens.  :meth:`get_frames` returns uint8 [N,H,W,3] RGB
    frames in the order asked (repeats allowed).
    """

    name = "base"

    def __init__(self, metadata: VideoMetadata) -> None:
        self.metadata = metadata
        self._closed = False
        self._times: np.ndarray | None = None

    # -- interface -----------------------------------------------------------------------
    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        """Frames at strictly increasing ``indices`` (int64 [N]) -> uint8 [N,H,W,3]."""
        raise NotImplementedError

    def _load_frame_times(self) -> np.ndarray:
        """float64 [n_frames]: every frame's presentation time in seconds, relative to frame 0."""
        raise NotImplementedError

    def expect(self, indices: np.ndarray) -> None:
        """Frame numbers int64 [N] the next reads will ask for, in order (the candidate grid).

        A hint: backends that decode sparsely keep these frames (PyAV).  No-op by default."""

    def pause(self) -> None:
        """The caller will not read for a while (it is encoding): backends that decode ahead in
        the background stop doing so here (decord).  No-op by default."""

    def close(self) -> None:
        self._closed = True

    # -- shared logic ----------------------------------------------------------------------
    def check_indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``indices`` as int64 [N]; :class:`InputError` for frame numbers outside the video."""
        arr = np.asarray(indices)
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise InputError(f"{self.metadata.path}: frame numbers must be integers")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.metadata.n_frames):
            bad = int(arr[(arr < 0) | (arr >= self.metadata.n_frames)][0])
            raise InputError(
                f"{self.metadata.path}: frame number {bad} is outside the video (0..{self.metadata.n_frames - 1})"
            )
        return arr

    def frame_times(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """float64 [N]: presentation times in seconds of frame numbers ``indices``.

        The time of a frame is its presentation timestamp (pts * time_base) relative to the
        first frame's, read from the container's packet index (no decoding): the true time
        also in a variable-frame-rate video, where ``index / avg_fps`` drifts.
        """
        arr = self.check_indices(indices)
        if self._times is None:
            times = np.asarray(self._load_frame_times(), dtype=np.float64)
            if times.shape != (self.metadata.n_frames,):
                raise VideoError(
                    self.metadata.path, f"{times.size} frame times for {self.metadata.n_frames} frames"
                )
            self._times = times
        return self._times[arr]

    def get_frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 [N,H,W,3] RGB frames at source frame numbers ``indices``, in the given order."""
        if self._closed:
            raise VideoError(self.metadata.path, "reader is closed")
        arr = self.check_indices(indices)
        if arr.size == 0:
            return np.zeros((0, self.metadata.height, self.metadata.width, 3), dtype=np.uint8)
        unique, inverse = np.unique(arr, return_inverse=True)
        frames = self._read_sorted(unique)
        if len(frames) != len(unique):
            raise VideoError(self.metadata.path, f"decoded {len(frames)} of {len(unique)} requested frames")
        if unique.size == arr.size and np.all(unique == arr):
            return frames
        return frames[inverse.reshape(-1)]

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        m = self.metadata
        return f"{type(self).__name__}({m.path!r}, n_frames={m.n_frames}, avg_fps={m.avg_fps:.3f})"


def iter_frame_chunks(
    reader: VideoReader, indices: Sequence[int] | np.ndarray, chunk_size: int = 32, pause_between: bool = False
) -> Iterator[np.ndarray]:
    """Yield uint8 [<=chunk_size,H,W,3] frames at ``indices``, chunk by chunk, in order.

    Only one chunk is held at a time, so memory is bounded by ``chunk_size`` frames whatever the
    video length.  Readers keep their decoding position between chunks, so increasing indices
    are decoded in one forward pass (no re-seek per chunk).  With ``pause_between`` the reader is
    paused (:meth:`VideoReader.pause`) before each chunk is handed over, for callers that do
    slow work between chunks; a prefetching caller pauses it itself only when it must wait.
    """
    if int(chunk_size) <= 0:
        raise InputError(f"chunk_size must be positive, got {chunk_size}")
    arr = reader.check_indices(indices)
    reader.expect(arr)
    for start in range(0, arr.size, int(chunk_size)):
        chunk = reader.get_frames(arr[start : start + int(chunk_size)])
        if pause_between:
            reader.pause()
        yield chunk
