"""The worker side of parallel candidate extraction: decode a video's 1 fps candidates and
CLIP-preprocess them in a separate process, streaming the chunks to the encoder process.

One worker process serves one video at a time, over one duplex pipe to the main process
(:mod:`tspo_eval.candidate_pool`).  Per video it

1. opens the video with the selector's decoder (``auto`` falls back to PyAV exactly as in
   :class:`~tspo_eval.selection.FrameSelector`), builds the candidate grid and its times, and
   computes the feature-cache key; when the cache already holds the entry it says so and decodes
   nothing;
2. decodes the candidates in chunks of ``chunk_size`` (the chunks ``FrameSelector`` encodes) and
   runs the CLIP image processor on each chunk (the same call ``HFClipEncoder`` makes), or, for
   encoders without a separable preprocessing step, ships the uint8 frames;
3. sends each chunk as raw bytes, at most ``depth`` chunks ahead of the encoder (credits), pausing
   the reader (decord's read-ahead) whenever it has to wait.

A job may be one *segment* of a video (``segment`` of ``segments``): the rows of
:func:`segment_rows`, whole chunks of the grid, so that several workers decode one long video
side by side (each seeks to the keyframe before its first candidate) and the encoder still sees
exactly FrameSelector's chunks.

Messages (worker -> main): ``("start", job, meta, grid, times, key)``, ``("cached", job)``,
``("chunk", job, row, shape, dtype, nbytes)`` followed by ``nbytes`` raw bytes outside any message
(:func:`send_raw` / :func:`recv_raw_into`: no pickling, and the reader fills its array directly),
``("done", job, meta)``, ``("error", job, message)``.  Main -> worker: ``("job", job, path, segment, segments)``,
``("ack",)``, ``None`` (exit).

A worker ignores SIGINT (the parent handles Ctrl-C and stops it) and asks the kernel to kill it
when its parent dies (``PR_SET_PDEATHSIG``), so no worker outlives a killed run.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

#: seconds a worker waits for a credit before pausing its reader (as FrameSelector's decode thread)
PAUSE_AFTER_S = 0.05
_PR_SET_PDEATHSIG = 1
#: a segment holds at least this many chunks (each segment's worker indexes the whole file and
#: decodes from a keyframe, so tiny segments cost more than they save)
MIN_SEGMENT_CHUNKS = 4


def segment_rows(total: int, chunk_size: int, segment: int, segments: int,
                 min_chunks: int = MIN_SEGMENT_CHUNKS) -> range:
    """Rows ``[lo, hi)`` of segment ``segment`` of ``segments`` of a ``total``-candidate grid.

    Boundaries fall on whole chunks of ``chunk_size`` (the chunks FrameSelector encodes), the
    segments cover the grid in order without overlap, and each holds at least ``min_chunks``
    chunks (the later segments of a short video are empty).
    """
    n_chunks = -(-int(total) // int(chunk_size))
    used = max(1, min(int(segments), n_chunks // max(1, int(min_chunks))))
    if segment >= used:
        return range(total, total)
    lo = segment * n_chunks // used * chunk_size
    hi = min(total, (segment + 1) * n_chunks // used * chunk_size)
    return range(min(lo, total), hi)


def send_raw(conn, data: memoryview) -> None:
    """Write ``data`` to ``conn``'s descriptor as it is (after a message that announced its size)."""
    fd, view, sent = conn.fileno(), data.cast("B"), 0
    while sent < len(view):
        sent += os.write(fd, view[sent:])


def recv_raw_into(conn, buffer: np.ndarray) -> None:
    """Fill the contiguous ``buffer`` with bytes read from ``conn``'s descriptor (a chunk after its message).

    Raises:
        EOFError: the writer closed its end (died) before all the bytes came.
    """
    fd, view, got = conn.fileno(), memoryview(buffer).cast("B"), 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError("the candidate worker's pipe closed in the middle of a chunk")
        got += n


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker needs to turn a video path into encoder-ready chunks (picklable).

    Attributes:
        decoder, fps, chunk_size: as in :class:`~tspo_eval.selection.FrameSelector`.
        encoder_fingerprint: the scorer's, for the feature-cache key.
        cache_root: the feature cache folder, or None (no cache lookups).
        pixels: the encoder's frames -> pixel values step (``HFClipEncoder.pixels``, the CLIP image
            processor's numbers), or None to ship uint8 frames for the main process's
            ``scorer.encode_frames``.
        pixel_dtype: torch dtype name the encoder casts pixels to (``bfloat16`` ...); the worker
            casts first when that halves the bytes to send (the cast is exact either side).
        depth: chunks a worker may send ahead of the encoder.
        decoder_threads: threads per decoder (0: the backend's default).
        on_job: called in the worker with each video path before it is opened (fault injection
            in tests: :mod:`tspo_eval.testing.worker_faults`); must be picklable.
        min_segment_chunks: the fewest chunks in one segment of a split video (see :func:`segment_rows`).
    """

    decoder: str
    fps: float
    chunk_size: int
    encoder_fingerprint: str
    cache_root: str | None = None
    pixels: Any = None
    pixel_dtype: str = "float32"
    depth: int = 2
    decoder_threads: int = 0
    on_job: Callable[[str], None] | None = None
    min_segment_chunks: int = MIN_SEGMENT_CHUNKS


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent exits (any way, SIGKILL included)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:  # pragma: no cover - no libc
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def worker_main(conn, settings: WorkerSettings, parent_pid: int) -> None:
    """Entry point of a worker process: serve jobs from ``conn`` until ``None`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    if settings.pixels is not None:  # uint8 frames need no torch: the worker starts in ~0.1 s
        import torch

        torch.set_num_threads(1)  # N workers share the cores; the image processor is a small part
    from loguru import logger

    logger.remove()  # the parent logs; a worker reports through its pipe
    logger.add(sys.stderr, level="WARNING")
    worker = _Worker(conn, settings)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "job":
            worker.run(*message[1:])


class _Worker:
    def __init__(self, conn, settings: WorkerSettings) -> None:
        self.conn, self.settings = conn, settings
        self.credits = settings.depth
        self.cache = None
        if settings.cache_root is not None:
            from tspo_eval.frame_index_cache import FeatureCache

            self.cache = FeatureCache(settings.cache_root)

    def run(self, job: int, path: str, segment: int = 0, segments: int = 1) -> None:
        """Process one video (or one segment of it); every failure becomes one ``error`` message naming the video."""
        from tspo_eval.errors import TspoEvalError

        self.credits = self.settings.depth
        try:
            if self.settings.on_job is not None:
                self.settings.on_job(path)
            self._run(job, path, segment, segments)
        except TspoEvalError as exc:
            self.conn.send(("error", job, str(exc)))
        except Exception as exc:  # a decoder's own exception: the video fails, the worker lives on
            self.conn.send(("error", job, f"{type(exc).__name__}: {exc}"))

    def _run(self, job: int, path: str, segment: int, segments: int) -> None:
        from tspo_eval.frame_index_cache import CacheKey
        from tspo_eval.video import (
            candidate_grid,
            candidate_stride,
            iter_frame_chunks,
            open_video,
            video_fingerprint,
        )

        s = self.settings
        with open_video(path, s.decoder, s.decoder_threads) as reader:
            meta = reader.metadata
            grid = candidate_grid(meta, s.fps)
            times = reader.frame_times(grid)
            key = CacheKey(video_fingerprint=video_fingerprint(path), candidate_stride=candidate_stride(meta.avg_fps, s.fps),
                           num_candidates=len(grid), encoder_fingerprint=s.encoder_fingerprint, decoder=meta.decoder)
            if self.cache is not None and self.cache.path_for(key).is_file():
                self.conn.send(("cached", job))  # the main process loads (and checks) the entry
                return
            self.conn.send(("start", job, meta, grid, times, key))
            rows = segment_rows(len(grid), s.chunk_size, segment, segments, s.min_segment_chunks)
            row = rows.start
            for frames in iter_frame_chunks(reader, grid[rows.start:rows.stop], s.chunk_size):
                payload = self._prepare(frames)
                self._wait_for_credit(reader)
                self._send_array(job, row, payload)
                row += len(frames)
            self.conn.send(("done", job, replace(reader.metadata)))

    def _prepare(self, frames: np.ndarray):
        """uint8 [n,H,W,3] frames -> what the encoder consumes: pixel_values [n,3,h,w] or the frames."""
        s = self.settings
        if s.pixels is None:
            return frames
        import torch

        pixels = s.pixels(frames)
        target = getattr(torch, s.pixel_dtype)
        if target.is_floating_point and torch.finfo(target).bits < torch.finfo(pixels.dtype).bits:
            pixels = pixels.to(target)  # round-to-nearest-even, the same cast .to(device, dtype) makes
        return pixels

    def _wait_for_credit(self, reader) -> None:
        while self.credits <= 0:
            if not self.conn.poll(PAUSE_AFTER_S):
                reader.pause()  # about to idle: stop decord's read-ahead
                self.conn.poll(None)
            message = self.conn.recv()
            if message is None:
                raise SystemExit(0)
            if message[0] == "ack":
                self.credits += 1
        self.credits -= 1

    def _send_array(self, job: int, row: int, payload) -> None:
        if not isinstance(payload, np.ndarray):  # a torch tensor of pixel values
            import torch

            tensor = payload.contiguous()
            raw = tensor.view(torch.uint8).numpy() if tensor.dtype != torch.uint8 else tensor.numpy()
            dtype = str(tensor.dtype).removeprefix("torch.")
            shape = tuple(tensor.shape)
        else:
            raw, dtype, shape = np.ascontiguousarray(payload), "uint8-frames", tuple(payload.shape)
        self.conn.send(("chunk", job, row, shape, dtype, raw.nbytes))
        send_raw(self.conn, memoryview(raw.reshape(-1)))
