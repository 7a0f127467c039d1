"""Parallel candidate extraction: N worker processes decode (and CLIP-preprocess) the candidates of
several videos (:mod:`tspo_eval.candidate_workers`); this process runs the one encoder.  With fewer
videos than workers, a video is split into segments of whole chunks that several workers decode
side by side (:meth:`CandidatePool.segments_for`); its features are assembled row by row.

The encoder takes chunks from every worker as they arrive and encodes each chunk alone, with the
same call and the same chunk boundaries as :class:`~tspo_eval.selection.FrameSelector`, so every
video's features are byte-identical to a single-process run whatever the number of workers or the
arrival order (a forward pass over rows of several videos would make a row's last bits depend on
its batch neighbours, i.e. on timing).  Results come out in completion order; callers that need a
canonical order sort (``precompute`` canonicalises its output).

Robustness: each worker talks over its own pipe, so a worker that dies (a decoder crash, a
segfault, ``os._exit``) corrupts nothing shared: its video is reported as failed, a fresh worker
takes its place, and the rest finish.  Workers ignore SIGINT and are stopped by this process on
the way out (normal end, exception, Ctrl-C); if this process is killed, the kernel kills them
(``PR_SET_PDEATHSIG``; start the pool from the thread that lives as long as the run).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import Tensor

from tspo_eval.candidate_workers import WorkerSettings, recv_raw_into, worker_main
from tspo_eval.errors import InputError
from tspo_eval.video import VideoMetadata

#: RAM budgeted per worker when choosing the default count: decoder buffers, one chunk of frames and
#: of pixels, the interpreter with torch (measured peak of one worker on 720p: see docs/precompute.md)
WORKER_RAM_BYTES = 700 * 2**20
#: RAM kept for the encoder process and everything else
RESERVED_RAM_BYTES = 2 * 2**30
#: from this many workers on, the workers run the CLIP image processor: each pays ~4 s of CPU to
#: import torch + transformers, which many cores amortise, and the encoder process does not become
#: the bottleneck of many decoders.  Below it the workers ship uint8 frames, start in ~0.1 s without
#: torch, and the encoder process preprocesses (2 cores, 2 workers, 4 x 3-minute 640x360 videos:
#: 6.5 s instead of 13.7 s; see docs/precompute.md).  The features are the same bytes either way.
PREPROCESS_IN_WORKERS_FROM = 4
#: seconds the pool waits on its workers' pipes at a time: Ctrl-C may be delivered to another thread
#: of this process (torch's), which does not wake the main thread from a wait without a timeout
SIGNAL_CHECK_S = 0.5


@dataclass
class CandidateOutcome:
    """One video's candidates: features, or the reason they could not be computed.

    Attributes:
        path: the video path as given.
        metadata: after decoding (``decoder`` = the backend that really decoded); None on failure.
        grid: int64 [T] candidate frame numbers; times: float64 [T] their presentation times.
        features: float32 [T, D] on CPU; None when ``cached`` (the feature cache holds them) or failed.
        cached: the feature cache already held this video's entry (nothing was decoded).
        error: one line naming the video, or None.
    """

    path: str
    metadata: VideoMetadata | None = None
    grid: np.ndarray | None = None
    times: np.ndarray | None = None
    features: Tensor | None = None
    cached: bool = False
    error: str | None = None


def available_ram() -> int:
    """Bytes of RAM available to new work (``MemAvailable``), or 0 when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dependency of accelerate
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers(ranks_on_node: int = 1) -> int:
    """The usable cores, bounded by the RAM available (``WORKER_RAM_BYTES`` each after
    ``RESERVED_RAM_BYTES``), shared between the ranks of this node; at least 1."""
    cores = max(1, usable_cores() // max(1, ranks_on_node))
    ram = available_ram()
    if ram <= 0:
        return cores
    by_ram = (ram - RESERVED_RAM_BYTES) // (WORKER_RAM_BYTES * max(1, ranks_on_node))
    return int(max(1, min(cores, by_ram)))


def decoder_threads_per_worker(workers: int) -> int:
    """Decoder threads of each of ``workers`` workers: the usable cores shared out (at least 1).

    FFmpeg's default (a thread per core in every worker) oversubscribes the cores N times over: on
    2 cores, 2 workers decoded the 4 benchmark videos in 3.1-3.3 s with 1 thread each and in
    3.8-3.9 s with the default.  Decoded pixels do not depend on the thread count.
    """
    return max(1, usable_cores() // max(1, int(workers)))


def worker_settings(selector, *, preprocess: bool = True, depth: int = 2, decoder_threads: int = 0,
                    on_job=None) -> WorkerSettings:
    """Settings that make workers produce exactly what ``selector`` (a FrameSelector) would encode.

    With ``preprocess``, scorers whose image encoder is a Hugging Face CLIP (the TSPO agent,
    ``ClipScorer`` over an HF CLIP) get their image processor run in the workers; otherwise (and
    for other scorers, e.g. open_clip) the workers ship uint8 frames and the encoder process runs
    ``scorer.encode_frames`` on them, exactly as :class:`~tspo_eval.selection.FrameSelector` does.
    """
    encoder = _hf_clip(selector.scorer)
    pixels = getattr(encoder, "pixels", None) if encoder is not None and preprocess else None
    dtype = str(getattr(encoder, "dtype", torch.float32)).removeprefix("torch.")
    root = str(selector.cache.root) if selector.cache is not None else None
    return WorkerSettings(decoder=selector.decoder, fps=selector.fps, chunk_size=selector.chunk_size,
                          encoder_fingerprint=selector.scorer.encoder_fingerprint, cache_root=root,
                          pixels=pixels, pixel_dtype=dtype, depth=depth,
                          decoder_threads=decoder_threads, on_job=on_job)


def _hf_clip(scorer) -> Any:
    from tspo_eval.agent.clip_encoder import HFClipEncoder
    from tspo_eval.agent.clip_scorer import ClipScorer
    from tspo_eval.agent.temporal_agent import TemporalAgent

    if not isinstance(scorer, (TemporalAgent, ClipScorer)):
        return None  # another Scorer (a wrapper, a test double): its own encode_frames, on uint8 frames
    for attr in ("clip", "encoder"):
        encoder = getattr(scorer, attr, None)
        if isinstance(encoder, HFClipEncoder):
            return encoder
    return None


@dataclass
class _Slot:
    """One worker process and the segment job it is working on."""

    process: Any
    conn: Any
    job: int | None = None


@dataclass
class _Video:
    """One video of a run as its segments come in (a video not split is one segment)."""

    path: str
    open_segments: int
    metadata: VideoMetadata | None = None
    grid: np.ndarray | None = None
    times: np.ndarray | None = None
    features: Tensor | None = None
    filled: int = 0
    cached: bool = False
    error: str | None = None
    decoders: set[str] = field(default_factory=set)

    def outcome(self) -> CandidateOutcome:
        """What the finished video gives: features, ``cached``, or the first error of a segment."""
        if self.error is not None:
            return CandidateOutcome(path=self.path, error=self.error)
        if self.cached:
            return CandidateOutcome(path=self.path, cached=True)
        if len(self.decoders) > 1:
            return CandidateOutcome(path=self.path, error=f"{self.path}: its segments were decoded by different "
                                                           f"backends ({', '.join(sorted(self.decoders))})")
        total = len(self.grid) if self.grid is not None else 0
        if self.filled != total or self.features is None:
            return CandidateOutcome(path=self.path, error=f"{self.path}: encoded {self.filled} of {total} candidates")
        return CandidateOutcome(path=self.path, metadata=self.metadata, grid=self.grid, times=self.times,
                                features=self.features)


class CandidatePool:
    """``workers`` processes extracting candidates for ``selector``'s scorer; use as a context manager.

    Args:
        selector: a :class:`~tspo_eval.selection.FrameSelector` (its decoder, fps, chunk size,
            feature cache and scorer are used; its scorer encodes in this process).
        workers: number of worker processes (>= 1).
        settings: override :func:`worker_settings` (tests, benchmarks).
    """

    def __init__(self, selector, workers: int, settings: WorkerSettings | None = None) -> None:
        if isinstance(workers, bool) or int(workers) < 1:
            raise InputError(f"--workers must be a positive integer, got {workers!r}")
        self.selector, self.n_workers = selector, int(workers)
        self.settings = settings or worker_settings(selector, preprocess=self.n_workers >= PREPROCESS_IN_WORKERS_FROM,
                                                    decoder_threads=decoder_threads_per_worker(self.n_workers))
        self._pixels = self.settings.pixels is not None
        self._encoder = _hf_clip(selector.scorer) if self._pixels else None
        self._context = mp.get_context("spawn")  # no fork of a process with torch/OpenMP threads
        self._slots: list[_Slot] = []
        self.peak_workers = 0
        self.worker_pids: list[int] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "CandidatePool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start_worker(self) -> _Slot:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(target=worker_main, args=(child, self.settings, os.getpid()),
                                        name="tspo-candidates", daemon=True)
        process.start()
        child.close()
        self.worker_pids.append(process.pid)
        slot = _Slot(process, parent)
        self._slots.append(slot)
        return slot

    def close(self, timeout: float = 2.0) -> None:
        """Stop every worker: ask, wait ``timeout`` s, then SIGKILL.  Idempotent."""
        for slot in self._slots:
            if slot.job is not None:  # interrupted mid-video: it may be blocked sending to us
                slot.process.kill()
                continue
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        for slot in self._slots:
            slot.process.join(timeout)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(1.0)
            slot.conn.close()
        self._slots.clear()

    # -- the run -----------------------------------------------------------------------------
    def segments_for(self, path: str, n_videos: int) -> int:
        """Segments ``path`` is split into: workers left over when there are fewer videos than workers
        share the videos (``n_workers // n_videos`` each), for backends that decode every segment
        the same way (an explicit ``--decoder``, or ``auto`` on H.264/HEVC, which is PyAV; ``auto``
        may switch a decord segment to PyAV halfway, so other codecs are not split)."""
        per_video = self.n_workers // max(1, n_videos)
        if per_video <= 1:
            return 1
        if self.settings.decoder == "auto":
            from tspo_eval.errors import VideoError
            from tspo_eval.video.probe import probe
            from tspo_eval.video.pyav_backend import SPARSE_CODECS

            try:
                if probe(path).codec not in SPARSE_CODECS:
                    return 1
            except VideoError:
                return 1  # the worker reports it
        return per_video

    def run(self, paths: Sequence[str]) -> Iterator[CandidateOutcome]:
        """Candidates of every path, yielded as each video completes (completion order)."""
        paths = [os.fspath(p) for p in paths]
        videos: list[_Video] = []
        video_of: list[int] = []  # segment job -> video
        jobs: list[tuple[str, int, int]] = []  # segment job -> (path, segment, segments)
        for path in paths:
            count = self.segments_for(path, len(paths))
            videos.append(_Video(path, open_segments=count))
            for segment in range(count):
                video_of.append(len(videos) - 1)
                jobs.append((path, segment, count))
        pending = list(range(len(jobs)))[::-1]  # popped from the end: given order
        want = min(self.n_workers, len(pending))
        while len(self._slots) < want:
            self._start_worker()
        self.peak_workers = max(self.peak_workers, len(self._slots))
        idle = list(self._slots)
        busy = 0
        while pending or busy:
            while idle and pending:
                slot = idle.pop()
                slot.job = pending.pop()
                slot.conn.send(("job", slot.job, *jobs[slot.job]))
                busy += 1
            ready = wait([s.conn for s in self._slots if s.job is not None]
                         + [s.process.sentinel for s in self._slots if s.job is not None], timeout=SIGNAL_CHECK_S)
            for slot in list(self._slots):
                if slot.job is None:
                    continue
                video = videos[video_of[slot.job]]
                if slot.conn in ready:
                    try:
                        finished = self._receive(slot, video)
                    except (EOFError, OSError, pickle.UnpicklingError):  # the pipe broke: the worker died
                        finished = self._dead(slot, video)
                elif slot.process.sentinel in ready:
                    finished = self._dead(slot, video)
                else:
                    continue
                if not finished:
                    continue
                busy -= 1
                if slot in self._slots:
                    slot.job = None
                    idle.append(slot)
                elif pending:
                    idle.append(self._start_worker())
                video.open_segments -= 1
                if video.open_segments == 0:
                    yield video.outcome()

    def _receive(self, slot: _Slot, video: _Video) -> bool:
        """Handle one message of ``slot`` (working on a segment of ``video``); True when the segment is finished."""
        message = slot.conn.recv()
        kind = message[0]
        if kind == "chunk":
            _, _, row, shape, dtype, nbytes = message
            buffer = np.empty(nbytes, dtype=np.uint8)
            recv_raw_into(slot.conn, buffer)
            if video.error is None and not video.cached:
                feats = self._encode(buffer, shape, dtype)
                if video.features is None:
                    video.features = torch.empty((len(video.grid), feats.shape[-1]), dtype=torch.float32)
                video.features[row: row + len(feats)] = feats
                video.filled += len(feats)
            slot.conn.send(("ack",))
            return False
        if kind == "start":
            _, _, metadata, grid, times, _key = message
            if video.grid is None:
                video.metadata, video.grid, video.times = metadata, grid, times
            elif not np.array_equal(video.grid, grid) and video.error is None:
                video.error = f"{video.path}: its segments found different candidate grids"
            return False
        if kind == "cached":
            video.cached = True
            return True
        if kind == "error":
            video.error = video.error or message[2]
            return True
        if kind == "done":
            video.metadata = message[2]
            video.decoders.add(message[2].decoder)
            return True
        raise RuntimeError(f"unexpected message {kind!r} from a candidate worker")

    def _dead(self, slot: _Slot, video: _Video) -> bool:
        """A worker died while working on a segment of ``video``: that video fails, the slot is dropped."""
        slot.process.join(5.0)
        if slot.process.is_alive():  # its pipe broke but it lives on: make sure it is gone
            slot.process.kill()
            slot.process.join(1.0)
        code = slot.process.exitcode
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        logger.warning("{}: the decoding worker (pid {}) died ({}); this video fails, the rest go on",
                       video.path, slot.process.pid, how)
        slot.conn.close()
        self._slots.remove(slot)
        video.error = video.error or (f"{video.path}: the decoding worker process died ({how}), "
                                      "e.g. a decoder crash on a corrupt file")
        return True

    def _encode(self, buffer: np.ndarray, shape: tuple[int, ...], dtype: str) -> Tensor:
        """One chunk (uint8 bytes ``buffer``) -> float32 [n, D] on CPU, with exactly FrameSelector's calls."""
        if dtype == "uint8-frames":
            frames = buffer.reshape(shape)
            with torch.inference_mode():
                out = self.selector.scorer.encode_frames(frames, batch_size=self.selector.chunk_size)
            return out.detach().to("cpu", torch.float32)
        from tspo_eval.agent.clip_encoder import pooled_features

        pixels = torch.from_numpy(buffer).view(getattr(torch, dtype)).reshape(shape)
        enc = self._encoder
        with torch.inference_mode():
            out = pooled_features(enc.model.get_image_features(pixel_values=pixels.to(enc.device, enc.dtype)))
            return out.float().cpu().detach().to("cpu", torch.float32)
