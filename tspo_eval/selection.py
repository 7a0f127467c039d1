"""The one frame-selection code path: video + scorer + feature cache -> :class:`SelectionResult`.

Candidates are decoded in bounded chunks and encoded chunk by chunk (for an encoder on an
accelerator, decoding of chunk i+1 overlaps encoding of chunk i in a background thread) into one
preallocated [T, D] tensor, which
is cached on disk (:class:`FeatureCache`) and in memory for the last video, so every question on
a video after the first costs one text encoding and the selector head.

Results are :class:`~tspo_eval.selection_result.SelectionResult` (re-exported here), built by
every producer (:class:`FrameSelector`, :func:`uniform_selection`, :func:`given_selection`)
with ``SelectionResult.from_candidates``; scorers are checked against
:class:`~tspo_eval.agent.scorer.Scorer`.
"""
from __future__ import annotations

import os
import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from loguru import logger
from torch import Tensor

from tspo_eval.agent.scorer import Scorer, check_scorer
from tspo_eval.errors import InputError, VideoError
from tspo_eval.frame_index_cache import CacheKey, FeatureCache
from tspo_eval.selection_result import SelectionResult
from tspo_eval.selector_options import STRATEGIES, SelectorOptions
from tspo_eval.video import (
    DECODERS,
    DEFAULT_DECODER,
    VideoMetadata,
    VideoReader,
    candidate_grid,
    candidate_stride,
    iter_frame_chunks,
    open_video,
    video_fingerprint,
)

#: candidate count from which a progress bar is shown on a terminal (about 2 minutes at 1 fps).
LONG_DECODE = 120
#: seconds the decoding thread waits for the encoder before pausing the reader (see VideoReader.pause).
PAUSE_AFTER_S = 0.05


def _check_request(num_frames: int, strategy: str) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
        raise InputError(f"number of frames must be a positive integer, got {num_frames!r}")
    if strategy == "auto":
        raise InputError("strategy 'auto' must be resolved first "
                         "(tspo_eval.benchmarks.resolve_strategy(strategy, task))")
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")


def _prefetch(chunks: Iterator[np.ndarray], depth: int = 1, on_wait=None) -> Iterator[np.ndarray]:
    """Run ``chunks`` in a background thread, at most ``depth`` chunks ahead of the consumer.

    ``on_wait()`` is called in that thread when it has waited ``PAUSE_AFTER_S`` for the consumer
    and when it has produced everything, i.e. whenever the decoder is about to idle for longer.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def idle() -> None:
        if on_wait is not None:
            on_wait()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():  # the consumer has gone: decode nothing more
                    return
                try:  # a short wait is not worth a pause (decord's pause costs a keyframe restart)
                    slots.put(chunk, timeout=PAUSE_AFTER_S)
                    continue
                except queue.Full:
                    idle()
                if not put(chunk):
                    return
            idle()
            put(done)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    worker = threading.Thread(target=produce, name="tspo-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)


def overlap_decoding(scorer: Scorer) -> bool:
    """Whether decoding should overlap encoding for ``scorer``: yes unless its ``device`` is the CPU.

    On the CPU the decoder and the encoder compete for the same cores, and the overlap measured
    slower than decoding and encoding in turn (decord: 60-minute video about 10% slower, see
    benchmarks/results/bench_candidates.md); on an accelerator the CPU decodes while it encodes.
    A scorer whose ``device`` is None (unknown) is overlapped.
    """
    device = scorer.device
    if device is None:
        return True
    try:
        return torch.device(device).type != "cpu"
    except (RuntimeError, TypeError):
        return True


class FrameSelector:
    """Select frames of videos for questions with ``scorer`` (a TemporalAgent or ClipScorer).

    Args:
        scorer: a :class:`~tspo_eval.agent.scorer.Scorer` (``encode_frames``, ``encode_text``,
            ``score``, ``select``, ``name``, ``fingerprint``, ``encoder_fingerprint``, ``device``);
            anything else is refused with a TypeError naming the missing members.
        cache: a :class:`FeatureCache`, True for the default one, False/None for none.
        decoder: ``auto`` (decord, falling back to PyAV per file) | ``decord`` | ``pyav`` | ``torchcodec``.
        fps: candidate rate (1.0 in TSPO).
        chunk_size: candidates decoded and encoded at a time (bounds memory).
        progress: True shows a progress bar; False shows one only on a terminal for long videos.
        prefetch: decode the next chunk while the current one is encoded; None (default) does so
            only when the scorer's encoder runs on an accelerator (see :func:`overlap_decoding`).
        workers: with more than 1, the candidates of a video not in the cache are decoded by that
            many worker processes, the video split into segments (:mod:`tspo_eval.candidate_pool`);
            the features are the same bytes as in this process.
    """

    def __init__(
        self, scorer: Scorer, *, cache: FeatureCache | None | bool = True, decoder: str = DEFAULT_DECODER,
        fps: float = 1.0, chunk_size: int = 32, progress: bool = False, prefetch: bool | None = None,
        workers: int = 1,
    ) -> None:
        if str(decoder).lower() not in DECODERS:
            raise InputError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        if int(chunk_size) <= 0:
            raise InputError(f"chunk_size must be positive, got {chunk_size}")
        candidate_stride(30.0, fps)  # validates fps
        self.scorer: Scorer = check_scorer(scorer)
        self.cache: FeatureCache | None = FeatureCache() if cache is True else (cache or None)
        self.decoder = str(decoder).lower()
        self.fps = float(fps)
        self.chunk_size = int(chunk_size)
        self.progress = progress
        self.prefetch = overlap_decoding(scorer) if prefetch is None else bool(prefetch)
        if isinstance(workers, bool) or int(workers) < 1:
            raise InputError(f"workers must be a positive integer, got {workers!r}")
        self.workers = int(workers)
        self._last: tuple[tuple, tuple[VideoMetadata, np.ndarray, Tensor, np.ndarray]] | None = None

    @classmethod
    def build(cls, options: SelectorOptions, *, progress: bool = False, chunk_size: int = 32) -> "FrameSelector":
        """The selector ``options`` describe: the scorer loaded (:func:`tspo_eval.agent.load_scorer`)
        and the feature cache opened (``options.cache_dir``; none when ``options.cache`` is off)."""
        from tspo_eval.agent import load_scorer

        scorer = load_scorer(scorer=options.scorer, agent=options.agent, clip_model=options.clip_model,
                             device=options.device, dtype=options.dtype)
        cache = FeatureCache(options.cache_dir) if options.cache else None
        return cls(scorer, cache=cache, decoder=options.decoder, fps=options.fps, chunk_size=chunk_size,
                   progress=progress, workers=options.workers or 1)

    # -- candidates ------------------------------------------------------------------------
    def _cache_key(self, path: str, meta: VideoMetadata, stride: int, n_candidates: int) -> CacheKey:
        """The feature-cache key: video content, grid, the scorer's image pipeline and the
        concrete decoder that decoded the pixels (with ``auto``: ``decord`` or ``pyav``, whichever did)."""
        return CacheKey(video_fingerprint=video_fingerprint(path), candidate_stride=stride, num_candidates=n_candidates,
                        encoder_fingerprint=self.scorer.encoder_fingerprint, decoder=meta.decoder)

    def candidate_features(self, video: str | os.PathLike) -> tuple[VideoMetadata, np.ndarray, Tensor]:
        """(metadata, candidate grid int64 [T], features float32 [T, D]) of ``video``.

        Served from memory for the last video, else from the feature cache, else decoded and
        encoded chunk by chunk (and then stored in the cache).
        """
        meta, grid, feats, _, _ = self._candidate_features(video)
        return meta, grid, feats

    def candidate_times(self, video: str | os.PathLike) -> np.ndarray:
        """float64 [T]: presentation times (seconds, relative to frame 0) of ``video``'s candidates.

        Served from memory for the last video; otherwise read from the container's index
        (nothing is decoded or encoded).
        """
        memo = self._memo(os.fspath(video))
        if memo is not None:
            return memo[3]
        with open_video(video, self.decoder) as reader:
            return reader.frame_times(candidate_grid(reader.metadata, self.fps))

    def _memo_key(self, path: str) -> tuple | None:
        try:
            st = os.stat(path)
        except OSError:
            return None  # open_video raises the proper VideoError
        return (os.path.realpath(path), st.st_size, st.st_mtime_ns, self.decoder, self.fps,
                self.scorer.encoder_fingerprint)

    def _memo(self, path: str) -> tuple[VideoMetadata, np.ndarray, Tensor, np.ndarray] | None:
        key = self._memo_key(path)
        if key is not None and self._last is not None and self._last[0] == key:
            return self._last[1]
        return None

    def _candidate_features(
        self, video: str | os.PathLike
    ) -> tuple[VideoMetadata, np.ndarray, Tensor, np.ndarray, bool]:
        """(metadata, grid int64 [T], features float32 [T, D], grid times float64 [T], cache hit)."""
        path = os.fspath(video)
        memo = self._memo(path)
        if memo is not None:
            return (*memo, True)
        memo_key = self._memo_key(path)
        with open_video(path, self.decoder) as reader:
            meta = reader.metadata
            grid = candidate_grid(meta, self.fps)
            stride = candidate_stride(meta.avg_fps, self.fps)
            times = reader.frame_times(grid)
            feats, hit, key = None, False, None
            if self.cache is not None:
                key = self._cache_key(path, meta, stride, len(grid))
                feats = self.cache.load(key)
                hit = feats is not None
                if hit:
                    logger.debug("feature cache hit for {} ({})", path, key.digest)
            if feats is None and self.workers > 1:
                meta, feats = self._encode_in_workers(path, len(grid)) or (meta, None)
            if feats is None:
                feats = self._encode_candidates(reader, grid)
                meta = reader.metadata  # with auto, decord may have handed over to PyAV while decoding
            if not hit and self.cache is not None and key is not None:
                self._save_features(replace(key, decoder=meta.decoder), path, meta, feats)
        if memo_key is not None:
            self._last = (memo_key, (meta, grid, feats, times))
        return meta, grid, feats, times, hit

    def _encode_in_workers(self, path: str, n_candidates: int) -> tuple[VideoMetadata, Tensor] | None:
        """(metadata after decoding, float32 [T, D] features) of ``path``, decoded by :attr:`workers`
        processes (the video split into segments; the chunks and so the bytes are this process's);
        None when the video would not be split (too short, or a codec ``auto`` may decode with two
        backends): this process decodes it then, with no worker to start."""
        from tspo_eval.candidate_pool import (
            PREPROCESS_IN_WORKERS_FROM,
            CandidatePool,
            decoder_threads_per_worker,
            worker_settings,
        )
        from tspo_eval.candidate_workers import segment_rows

        settings = replace(worker_settings(self, preprocess=self.workers >= PREPROCESS_IN_WORKERS_FROM,
                                           decoder_threads=decoder_threads_per_worker(self.workers)),
                           cache_root=None)  # this process has just looked the video up
        with CandidatePool(self, self.workers, settings) as pool:
            second = segment_rows(n_candidates, self.chunk_size, 1, self.workers, settings.min_segment_chunks)
            if not second or pool.segments_for(path, 1) < 2:
                return None
            (outcome,) = list(pool.run([path]))
        if outcome.error is not None:
            problem = outcome.error.removeprefix(f"{path}: ")
            raise VideoError(path, problem)
        return outcome.metadata, outcome.features

    def _save_features(self, key: CacheKey, path: str, meta: VideoMetadata, feats: Tensor) -> None:
        self.cache.save(key, feats, extra={"video": os.path.basename(path), "n_frames": str(meta.n_frames),
                                           "avg_fps": repr(meta.avg_fps)})

    # -- features computed elsewhere (tspo_eval.candidate_pool: decoding in worker processes) ----
    def adopt_candidates(self, video: str | os.PathLike, metadata: VideoMetadata, grid: np.ndarray,
                         times: np.ndarray, features: Tensor) -> None:
        """Take ``video``'s candidate features computed outside this selector (same decoder, fps,
        chunks and encoder): store them in the feature cache under the key and with the bytes
        :meth:`candidate_features` would have written, and keep them as the last video in memory,
        so the next :meth:`select_many` on ``video`` encodes nothing.

        ``metadata`` is the one after decoding (``decoder`` = the backend that decoded); ``grid``
        int64 [T], ``times`` float64 [T], ``features`` float32 [T, D].
        """
        path = os.fspath(video)
        if len(grid) != len(times) or features.shape[0] != len(grid):
            raise ValueError(f"{path}: {len(grid)} candidates, {len(times)} times, {features.shape[0]} feature rows")
        if self.cache is not None:
            key = self._cache_key(path, metadata, candidate_stride(metadata.avg_fps, self.fps), len(grid))
            self._save_features(key, path, metadata, features)
        memo_key = self._memo_key(path)
        if memo_key is not None:
            self._last = (memo_key, (metadata, np.asarray(grid, dtype=np.int64), features,
                                     np.asarray(times, dtype=np.float64)))

    def _encode_candidates(self, reader: VideoReader, grid: np.ndarray) -> Tensor:
        """Stream the candidates at ``grid`` through the scorer's image encoder -> float32 [T, D]."""
        from tqdm.auto import tqdm

        total = len(grid)
        if self.prefetch and total > self.chunk_size:
            # the decoder pauses only when it must wait for the encoder, so a decode-bound run
            # never restarts decoding at a keyframe (decord's pause is a seek)
            chunks: Iterator[np.ndarray] = _prefetch(
                iter_frame_chunks(reader, grid, self.chunk_size), depth=1, on_wait=reader.pause
            )
        else:
            chunks = iter_frame_chunks(reader, grid, self.chunk_size, pause_between=True)
        disable = False if self.progress else (None if total >= LONG_DECODE else True)
        feats: Tensor | None = None
        filled = 0
        bar = tqdm(total=total, unit="frame", desc=f"encoding {Path(reader.metadata.path).name}", disable=disable,
                   leave=False)
        try:
            for chunk in chunks:
                with torch.inference_mode():
                    out = self.scorer.encode_frames(chunk, batch_size=self.chunk_size)
                out = out.detach().to("cpu", torch.float32)
                if feats is None:
                    feats = torch.empty((total, out.shape[-1]), dtype=torch.float32)
                feats[filled : filled + len(out)] = out
                filled += len(out)
                bar.update(len(out))
        finally:
            bar.close()
            if hasattr(chunks, "close"):
                chunks.close()  # stop the decoding thread before the reader is closed
        if feats is None or filled != total:
            raise RuntimeError(f"{reader.metadata.path}: encoded {filled} of {total} candidates")
        return feats

    # -- selection -------------------------------------------------------------------------
    def select(self, video: str | os.PathLike, question: str, num_frames: int = 64, strategy: str = "topk") -> SelectionResult:
        """Frames of ``video`` for ``question`` (``num_frames`` of them; all candidates when T <= K)."""
        return self.select_many(video, [question], num_frames=num_frames, strategy=strategy)[0]

    def select_many(
        self, video: str | os.PathLike, questions: Sequence[str], num_frames: int = 64, strategy: str = "topk"
    ) -> list[SelectionResult]:
        """One result per question; the candidates are decoded and encoded once."""
        _check_request(num_frames, strategy)
        if isinstance(questions, str):
            raise InputError("questions must be a sequence of strings, not one string (use select())")
        from tspo_eval.agent.text import question_stem

        for question in questions:  # an empty or options-only question fails before the video is decoded
            question_stem(question)
        meta, grid, feats, grid_times, hit = self._candidate_features(video)
        results = []
        for question in questions:
            with torch.inference_mode():
                text = self.scorer.encode_text(question)
                scores = self.scorer.score(feats, text).detach().to("cpu", torch.float32).reshape(-1)
                if len(grid) <= num_frames:
                    positions = torch.arange(len(grid), dtype=torch.long)
                else:
                    positions = torch.as_tensor(self.scorer.select(scores, num_frames, strategy), dtype=torch.long).cpu()
            results.append(SelectionResult.from_candidates(
                video=os.fspath(video), question=question, metadata=meta, candidates=grid, candidate_times=grid_times,
                positions=positions, scores=scores, strategy=strategy, scorer=self.scorer.name, fps=self.fps,
                agent_fingerprint=self.scorer.fingerprint, encoder_fingerprint=self.scorer.encoder_fingerprint,
                feature_cache_hit=hit,
            ))
        return results


def uniform_selection(
    video: str | os.PathLike, num_frames: int = 64, decoder: str = DEFAULT_DECODER, fps: float = 1.0, *,
    question: str = "",
) -> SelectionResult:
    """The uniform baseline on the same candidate grid: ``round(linspace(0, T-1, K))`` of the
    candidates (all of them when T <= K); no scorer, ``scores`` is empty."""
    from tspo_eval.agent.selection import select_positions

    _check_request(num_frames, "uniform")
    with open_video(video, decoder) as reader:
        meta = reader.metadata
        grid = candidate_grid(meta, fps)
        grid_times = reader.frame_times(grid)
    positions = select_positions(torch.zeros(len(grid)), int(num_frames), "uniform")
    return SelectionResult.from_candidates(
        video=os.fspath(video), question=question, metadata=meta, candidates=grid, candidate_times=grid_times,
        positions=positions, strategy="uniform", scorer="uniform", fps=fps,
    )


def given_selection(
    video: str | os.PathLike, frame_indices: Sequence[int], *, question: str = "", decoder: str = DEFAULT_DECODER,
    fps: float = 1.0, strategy: str = "index", scorer: str = "index", agent_fingerprint: str = "",
    encoder_fingerprint: str = "", item: str = "",
) -> SelectionResult:
    """A result holding exactly ``frame_indices`` (e.g. a row of a frame-index file), sorted, timed
    with the video's own presentation times; no scores.

    When every frame is on the video's ``fps`` candidate grid, the candidates are that grid and the
    positions point into it (as if a scorer had chosen them); otherwise the candidates are the
    given frames themselves and the positions are ``0..K-1``.  Either way
    ``frame_indices == candidate_indices[selected_positions]``.

    Raises:
        VideoError: a frame number outside the video; ``item`` (e.g. ``"question q7: indexed"``)
            starts the message.
    """
    indices = sorted(int(i) for i in frame_indices)
    with open_video(video, decoder) as reader:
        meta = reader.metadata
        bad = [i for i in indices if not 0 <= i < meta.n_frames]
        if bad:
            raise VideoError(video, f"{item + ' ' if item else ''}frames {bad[:5]} outside 0..{meta.n_frames - 1}")
        grid = candidate_grid(meta, fps)
        position = {int(f): p for p, f in enumerate(grid.tolist())}
        if all(i in position for i in indices):
            candidates, positions = grid, [position[i] for i in indices]
        else:
            candidates, positions = np.asarray(indices, dtype=np.int64), list(range(len(indices)))
        times = reader.frame_times(candidates)  # presentation times (VFR-safe)
    return SelectionResult.from_candidates(
        video=os.fspath(video), question=question, metadata=meta, candidates=candidates, candidate_times=times,
        positions=positions, strategy=strategy, scorer=scorer, fps=fps, agent_fingerprint=agent_fingerprint,
        encoder_fingerprint=encoder_fingerprint,
    )
