"""``decoder="auto"``: the fastest exact backend for each file.

H.264 and HEVC (nearly every benchmark video) go to PyAV, whose exact sparse decoding skips the
non-reference frames nobody asked for: on 640x360 long-GOP H.264 its 1 fps candidate pass took
0.82 s where decord took 1.26 s (3 B-frames) and 1.02 s vs 1.36 s (no B-frames), with the same
pixels (docs/video-and-cache.md).  Other codecs go to decord, and to PyAV when decord cannot open or
decode the file: its bundled FFmpeg has no AV1 decoder, and it mishandles some files (see
:class:`~tspo_eval.video.decord_backend.DecordReader`).  All backends number frames the same way
(the ``i``-th presented frame), so the 1 fps candidate grid and every frame number stay the same
whichever one decodes.  A fallback logs one WARNING line naming the file and the reason (once per
file and process; DEBUG after that).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Sequence

import numpy as np
from loguru import logger

from tspo_eval.errors import VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.probe import StreamHeader, check_file, probe
from tspo_eval.video.pyav_backend import SPARSE_CODECS

_decord_missing_reported = False
#: files whose fallback was already logged at WARNING level (later ones go to DEBUG): a CLI run
#: opens a file several times (probe, candidates, contact sheet) and should say it once
_reported: OrderedDict[tuple[str, str], None] = OrderedDict()
_REPORTED_MAX = 4096


def _report_fallback(path: str, stage: str, reason: str) -> None:
    """One WARNING line per file and stage ("open" / "decode") in this process; DEBUG afterwards."""
    key = (os.path.realpath(path), stage)
    level = "DEBUG" if key in _reported else "WARNING"
    _reported[key] = None
    while len(_reported) > _REPORTED_MAX:
        _reported.popitem(last=False)
    what = "decord cannot read it" if stage == "open" else "decord failed while decoding"
    logger.log(level, "{}: {} ({}); falling back to PyAV", path, what, reason)


def _open_decord(path: str, header: StreamHeader, threads: int = 0) -> VideoReader | None:
    """A decord reader, or None (after one WARNING line) when decord cannot take the file."""
    global _decord_missing_reported
    try:
        import decord  # noqa: F401

        from tspo_eval.video.decord_backend import DecordReader
    except (ImportError, OSError) as exc:
        if not _decord_missing_reported:
            logger.warning("decord is not usable ({}); decoding every video with PyAV", exc)
            _decord_missing_reported = True
        return None
    try:
        return DecordReader(path, num_threads=threads, header=header)
    except VideoError as exc:
        _report_fallback(path, "open", getattr(exc, "reason", exc.problem))
        return None


class AutoReader(VideoReader):
    """Delegates to PyAV (H.264, HEVC) or to a decord reader, replaced by a PyAV reader when decord fails.

    ``metadata.decoder`` names the backend that decodes now (``decord`` or ``pyav``), so a
    feature-cache key built from it records the decoder that really produced the pixels.
    """

    name = "auto"

    def __init__(self, path: str, threads: int = 0) -> None:
        from tspo_eval.video.pyav_backend import PyAVReader

        path = check_file(path)
        header = probe(path)  # not a video / no stream / unreadable: no backend can help
        self._path, self._header, self._threads = path, header, threads
        inner = None if header.codec in SPARSE_CODECS else _open_decord(path, header, threads)
        self._inner: VideoReader = inner if inner is not None else PyAVReader(path, threads=threads, header=header)
        self._expected: np.ndarray | None = None
        super().__init__(self._inner.metadata)

    @property
    def backend(self) -> str:
        """The backend decoding now: ``decord`` or ``pyav``."""
        return self._inner.name

    def _switch_to_pyav(self, problem: str) -> None:
        from tspo_eval.video.pyav_backend import PyAVReader

        _report_fallback(self._path, "decode", problem)
        try:
            fallback = PyAVReader(self._path, threads=self._threads, header=self._header)
        except VideoError as exc:
            raise VideoError(self._path, f"decord failed while decoding ({problem}); PyAV: {exc.problem}") from None
        if fallback.metadata.n_frames != self.metadata.n_frames:
            fallback.close()
            raise VideoError(
                self._path,
                f"decord failed while decoding ({problem}); PyAV counts {fallback.metadata.n_frames} frames "
                f"where decord counted {self.metadata.n_frames}, so frame numbers would not match",
            )
        self._inner.close()
        self._inner = fallback
        self.metadata = fallback.metadata
        if self._expected is not None:
            fallback.expect(self._expected)

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        try:
            return self._inner._read_sorted(indices)
        except VideoError as exc:
            if self._inner.name != "decord":
                raise
            self._switch_to_pyav(exc.problem)
        return self._inner._read_sorted(indices)

    def frame_times(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        return self._inner.frame_times(indices)

    def expect(self, indices: np.ndarray) -> None:
        self._expected = np.asarray(indices)
        self._inner.expect(indices)

    def pause(self) -> None:
        self._inner.pause()

    def close(self) -> None:
        if not self._closed and getattr(self, "_inner", None) is not None:
            self._inner.close()
        super().close()
