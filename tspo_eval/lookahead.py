"""Lookahead: prepare the candidate features of the next videos while the VLM answers.

A host that knows which videos come next (lmms-eval hands the model all its requests at once;
VLMEvalKit's table order is known through the running job) lets a :class:`Lookahead` decode and
encode the 1 fps candidates of the next ``depth`` videos in one background thread, so a cold
feature cache costs little wall time behind a VLM that waits on its accelerator.

How it stays correct and bounded:

* the background work is :meth:`FrameSelector.candidate_features` itself, on a second selector
  that shares the foreground's scorer and :class:`~tspo_eval.frame_index_cache.FeatureCache`
  (its own in-memory memo): the entries it writes have the same :class:`CacheKey` and bytes as
  the foreground's, and the foreground then reads them from the cache as usual;
* only the ``depth`` videos after the one the foreground is on are prepared: at most ``depth``
  videos are prepared ahead of use (their features are on disk; the worker keeps one in memory),
  and decoded frames are streamed in chunks, as in the foreground;
* :meth:`Lookahead.claim` (the foreground is about to use a video) waits while that video is
  being prepared (no duplicate decode), and takes it over when it was not started;
* an error in a prepared video is kept, not raised: the foreground selects that video itself
  and raises its own error, naming the video, at that video's questions only;
* :meth:`Lookahead.close` stops the thread within one chunk (the worker's scorer refuses further
  chunks) and joins it, so no thread outlives the run; use it as a context manager.

Sharing the encoder: with the scorer on an accelerator, foreground and background calls of the
scorer are serialised by one lock (``serialize=None`` decides by the scorer's ``device``); on the
CPU they run unlocked (a lock would make a question wait for a whole chunk's encoding) and share
the cores. The background keeps torch's thread count: encoding with fewer intra-op threads than
the foreground changed the features' last bits for the tests' CLIP (so the cache entries would
differ from a run without lookahead). On Linux the background thread runs at a lower priority
(niceness +:data:`BACKGROUND_NICE`, inherited by its decoder and OpenMP threads), so the CPU
goes to the answering first; it still shares the GIL with it. Measured on 2 cores in
``benchmarks/results/bench_lookahead.md``; decoding the next chunk while encoding one (the
selector's ``prefetch``) was measured slower there, so the worker uses the foreground's setting.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from tspo_eval.errors import InputError

if TYPE_CHECKING:
    from tspo_eval.selection import FrameSelector

#: default number of upcoming videos prepared in the background (``lookahead=N``)
DEFAULT_LOOKAHEAD = 2
#: seconds :meth:`Lookahead.close` waits for the thread (it stops within one chunk)
JOIN_TIMEOUT_S = 120.0
#: niceness added to the background thread on Linux (the threads it starts inherit it): the CPU
#: goes to the foreground (the VLM, the answer frames) first and to the lookahead when it idles
BACKGROUND_NICE = 10

_PENDING, _RUNNING, _READY, _FAILED, _CLAIMED = "pending", "running", "ready", "failed", "claimed"


class LookaheadStopped(Exception):
    """Raised inside the worker's scorer when the lookahead is closed (ends the current video)."""


class GuardedScorer:
    """A scorer proxy: every ``encode_frames`` / ``encode_text`` / ``score`` / ``select`` call runs
    under ``lock`` (when given), and ``encode_frames`` refuses to start once ``stop`` is set.

    Everything else (``name``, ``fingerprint``, ``encoder_fingerprint``, ``device``) is the wrapped
    scorer's, so cache keys and results are the same as without the proxy.
    """

    def __init__(self, scorer: Any, lock: threading.Lock | None = None, stop: threading.Event | None = None) -> None:
        self.wrapped = scorer
        self._lock = lock
        self._stop = stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._lock is None:
            return getattr(self.wrapped, method)(*args, **kwargs)
        with self._lock:
            return getattr(self.wrapped, method)(*args, **kwargs)

    def encode_frames(self, frames: Any, batch_size: int = 32) -> Any:
        """float32 [T, D]: the wrapped scorer's features of ``frames`` (uint8 [T, H, W, 3])."""
        if self._stop is not None and self._stop.is_set():
            raise LookaheadStopped()
        return self._call("encode_frames", frames, batch_size=batch_size)

    def encode_text(self, question: str) -> Any:
        return self._call("encode_text", question)

    def score(self, frame_features: Any, text_features: Any) -> Any:
        return self._call("score", frame_features, text_features)

    def select(self, scores: Any, num_frames: int = 64, strategy: str = "topk") -> Any:
        return self._call("select", scores, num_frames, strategy)


@dataclass
class LookaheadStats:
    """What the lookahead did in one run (logged by :meth:`Lookahead.close`)."""

    prepared: int = 0          # videos whose features the background wrote (or found) in the cache
    failed: int = 0            # videos whose background preparation raised (the foreground redid them)
    taken_over: int = 0        # videos the foreground reached before the background started them
    waited_s: float = 0.0      # foreground seconds spent waiting for a video being prepared
    max_ahead: int = 0         # most videos prepared or in preparation ahead of the foreground at once


class Lookahead:
    """Prepares the candidate features of the next ``depth`` planned videos in one background thread.

    Args:
        selector: the foreground :class:`~tspo_eval.selection.FrameSelector`; it must have a
            feature cache (the prepared features reach the foreground through it).
        depth: how many upcoming videos to prepare (>= 1).
        serialize: run foreground and background scorer calls one at a time (one lock); None:
            only when the scorer's ``device`` is not the CPU.

    Use: :meth:`plan` the videos in order of use (more may be planned later), :meth:`claim` each
    video before selecting on it, :meth:`close` at the end (or ``with Lookahead(...) as ahead:``).
    """

    def __init__(self, selector: FrameSelector, depth: int = DEFAULT_LOOKAHEAD, *,
                 serialize: bool | None = None) -> None:
        from tspo_eval.selection import FrameSelector, overlap_decoding

        if isinstance(depth, bool) or int(depth) < 1:
            raise InputError(f"lookahead={depth!r} must be a positive number of videos")
        if selector.cache is None:
            raise InputError("lookahead needs the feature cache (prepared features reach the questions through it)")
        self.depth = int(depth)
        self.selector = selector
        self._original_scorer = selector.scorer
        lock = threading.Lock() if (overlap_decoding(selector.scorer) if serialize is None else serialize) else None
        self.serialized = lock is not None
        import torch

        self._torch_threads = torch.get_num_threads()  # the foreground's: same reductions, same bits
        self._stop = threading.Event()
        if lock is not None:  # the foreground's scorer calls take the same lock while the lookahead runs
            selector.scorer = GuardedScorer(self._original_scorer, lock)
        self._worker_selector = FrameSelector(
            GuardedScorer(self._original_scorer, lock, self._stop), cache=selector.cache, decoder=selector.decoder,
            fps=selector.fps, chunk_size=selector.chunk_size, progress=False, prefetch=selector.prefetch)
        self._order: list[str] = []
        self._position: dict[str, int] = {}
        self._state: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._cursor = -1  # position of the video the foreground is on
        self._cond = threading.Condition()
        self._closed = False
        self.stats = LookaheadStats()
        self._thread = threading.Thread(target=self._run, name="tspo-lookahead", daemon=True)
        self._thread.start()

    # -- foreground -----------------------------------------------------------------------
    def plan(self, videos: Iterable[str | os.PathLike]) -> None:
        """Append ``videos`` (in order of use) to the plan; videos already planned keep their place."""
        with self._cond:
            for video in videos:
                path = os.fspath(video)
                if path not in self._position:
                    self._position[path] = len(self._order)
                    self._order.append(path)
                    self._state[path] = _PENDING
            self._cond.notify_all()

    def claim(self, video: str | os.PathLike) -> None:
        """The foreground is about to select on ``video``: wait while it is being prepared, then
        move the window of prepared videos past it. A video that failed in the background, or
        was never planned or started, is left to the foreground (which raises its own error)."""
        path = os.fspath(video)
        with self._cond:
            position = self._position.get(path)
            if position is None:
                return
            started = time.perf_counter()
            while self._state[path] == _RUNNING and self._thread.is_alive():
                self._cond.wait(timeout=0.5)
            self.stats.waited_s += time.perf_counter() - started
            state = self._state[path]
            if state == _PENDING:
                self.stats.taken_over += 1
            elif state == _FAILED:
                logger.debug("lookahead: {} failed in the background ({}); selecting it in the foreground", path,
                             self._errors.get(path))
            if state != _RUNNING:
                self._state[path] = _CLAIMED
            self._cursor = max(self._cursor, position)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the background thread (within one chunk) and wait for it; restore the selector."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(timeout=JOIN_TIMEOUT_S)
        if self._thread.is_alive():  # pragma: no cover - a decoder stuck in a system call
            logger.warning("lookahead: the background thread did not stop within {} s", JOIN_TIMEOUT_S)
        self.selector.scorer = self._original_scorer
        stats = self.stats
        logger.info("lookahead: {} videos prepared ahead, {} failed there, {} taken over; foreground waited {:.2f} s",
                    stats.prepared, stats.failed, stats.taken_over, stats.waited_s)

    def __enter__(self) -> Lookahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """Whether the background thread still runs."""
        return self._thread.is_alive()

    # -- background -----------------------------------------------------------------------
    def _next_video(self) -> str | None:
        """The first planned, unstarted video of the window after the cursor (called under the lock)."""
        window = self._order[self._cursor + 1:self._cursor + 1 + self.depth]
        ahead = sum(1 for v in window if self._state[v] in (_RUNNING, _READY))
        for video in window:
            if self._state[video] == _PENDING:
                self.stats.max_ahead = max(self.stats.max_ahead, ahead + 1)
                return video
        return None

    def _run(self) -> None:
        import torch

        lower_thread_priority(BACKGROUND_NICE)
        torch.set_num_threads(self._torch_threads)  # per calling thread under OpenMP; a new thread may differ
        video: str | None = None
        try:
            while True:
                with self._cond:
                    video = None
                    while not self._closed and (video := self._next_video()) is None:
                        self._cond.wait()
                    if self._closed:
                        return
                    self._state[video] = _RUNNING
                state, error = self._prepare(video)
                with self._cond:
                    self._state[video] = state
                    if error:
                        self._errors[video] = error
                    video = None
                    self._cond.notify_all()
                    if self._closed:
                        return
        finally:
            with self._cond:  # never leave a video marked running: claim() would wait for it
                if video is not None and self._state.get(video) == _RUNNING:
                    self._state[video] = _FAILED
                self._cond.notify_all()

    def _prepare(self, video: str) -> tuple[str, str]:
        """(state, error) after preparing ``video``'s candidate features into the cache."""
        started = time.perf_counter()
        try:
            _, grid, _ = self._worker_selector.candidate_features(video)
        except LookaheadStopped:
            return _FAILED, "stopped"
        except Exception as exc:  # noqa: BLE001 - kept for the foreground, which raises its own error
            self.stats.failed += 1
            logger.debug("lookahead: preparing {} failed: {}", video, exc)
            return _FAILED, str(exc)
        self.stats.prepared += 1
        logger.debug("lookahead: {} candidates of {} ready in {:.2f} s", len(grid), os.path.basename(video),
                     time.perf_counter() - started)
        return _READY, ""


def lower_thread_priority(nice: int) -> bool:
    """Add ``nice`` to the calling thread's niceness (Linux: per thread, inherited by the threads it
    starts, e.g. its decoder and OpenMP threads); elsewhere nothing (there the same call would
    renice the whole process). True when it was lowered."""
    if not sys.platform.startswith("linux") or nice <= 0:
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (AttributeError, OSError) as exc:  # a sandbox may refuse it: run at the normal priority
        logger.debug("lookahead: cannot lower the background thread's priority ({})", exc)
        return False
    return True
