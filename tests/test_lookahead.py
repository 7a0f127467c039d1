"""The lookahead prefetcher (tspo_eval.lookahead): same features and cache entries as the
foreground path, errors kept for their own video, at most ``depth`` videos ahead, no thread left."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tspo_eval.errors import InputError, VideoError
from tspo_eval.frame_index_cache import FeatureCache
from tspo_eval.lookahead import GuardedScorer, Lookahead
from tspo_eval.selection import FrameSelector

QUESTION = "When does the bar reach the right edge?"


@pytest.fixture(scope="module")
def videos(make_video) -> list[Path]:
    """Four short, different videos (5 fps candidates: 12-20 of them)."""
    return [make_video(f"ahead_{i}.mp4", n_frames=60 + 20 * i, fps=10.0, width=64, height=48, gop=25) for i in range(4)]


def _entries(cache_dir: Path) -> dict[str, tuple[dict, bytes]]:
    """file name -> (metadata, tensor bytes) of each cache entry (safetensors writes its metadata
    map in no fixed order, so the files' bytes are compared part by part)."""
    from safetensors import safe_open

    entries = {}
    for path in sorted(Path(cache_dir).rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            tensors = b"".join(fh.get_tensor(k).numpy().tobytes() for k in sorted(fh.keys()))
            entries[path.name] = (fh.metadata(), tensors)
    return entries


def _wait_idle(ahead: Lookahead, prepared: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while ahead.stats.prepared + ahead.stats.failed < prepared and time.monotonic() < deadline:
        time.sleep(0.02)


def test_lookahead_gives_the_same_frames_and_cache_entries(tiny_agent, videos, tmp_path):
    plain = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "plain"), decoder="pyav", fps=5.0, chunk_size=8)
    expected = [plain.select(v, QUESTION, num_frames=4) for v in videos]

    ahead_selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "ahead"), decoder="pyav", fps=5.0,
                                   chunk_size=8)
    with Lookahead(ahead_selector, depth=2) as ahead:
        ahead.plan(videos)
        _wait_idle(ahead, 2)
        got = []
        for video in videos:
            ahead.claim(video)
            got.append(ahead_selector.select(video, QUESTION, num_frames=4))
    assert ahead.stats.prepared >= 2  # the background really did part of the work
    assert [r.frame_indices for r in got] == [r.frame_indices for r in expected]
    assert [r.scores for r in got] == [r.scores for r in expected]
    assert _entries(tmp_path / "ahead") == _entries(tmp_path / "plain")
    assert len(_entries(tmp_path / "plain")) == len(videos)
    assert not ahead.alive and ahead_selector.scorer is tiny_agent


def test_at_most_depth_videos_are_prepared_ahead(tiny_agent, videos, tmp_path):
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"), decoder="pyav", fps=5.0, chunk_size=8)
    with Lookahead(selector, depth=2) as ahead:
        ahead.plan(videos)
        _wait_idle(ahead, 2)
        time.sleep(0.3)  # the thread would go on here if it were unbounded
        assert ahead.stats.prepared == 2
        assert len(_entries(tmp_path / "c")) == 2
        ahead.claim(videos[0])  # the window moves one video on
        _wait_idle(ahead, 3)
        time.sleep(0.3)
        assert ahead.stats.prepared == 3
        assert ahead.stats.max_ahead <= 2
    assert not ahead.alive


def test_error_in_a_prepared_video_surfaces_only_at_its_own_questions(tiny_agent, videos, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    order = [videos[0], broken, videos[1]]
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"), decoder="pyav", fps=5.0, chunk_size=8)
    with Lookahead(selector, depth=3) as ahead:
        ahead.plan(order)
        _wait_idle(ahead, 3)
        assert ahead.stats.failed == 1 and ahead.stats.prepared == 2
        outcomes = []
        for video in order:
            ahead.claim(video)
            try:
                outcomes.append(selector.select(video, QUESTION, num_frames=4).frame_indices)
            except VideoError as exc:
                outcomes.append(str(exc))
    assert isinstance(outcomes[0], list) and isinstance(outcomes[2], list)
    assert isinstance(outcomes[1], str) and "broken.mp4" in outcomes[1]


def test_close_stops_the_thread_within_a_chunk(tiny_agent, make_video, tmp_path):
    long_video = make_video("ahead_long.mp4", n_frames=600, fps=30.0, width=64, height=48, gop=250)
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"), decoder="pyav", fps=30.0, chunk_size=4)
    entered = threading.Event()
    real = tiny_agent.encode_frames

    class Slow(GuardedScorer):
        def encode_frames(self, frames, batch_size=32):
            entered.set()
            time.sleep(0.05)
            return real(frames, batch_size=batch_size)

    selector.scorer = Slow(tiny_agent)  # 150 chunks x 50 ms: 7.5 s if close() waited for the video
    ahead = Lookahead(selector, depth=1)
    ahead.plan([long_video])
    assert entered.wait(20)
    started = time.perf_counter()
    ahead.close()
    assert time.perf_counter() - started < 3.0
    assert not ahead.alive
    assert ahead.stats.prepared == 0 and not _entries(tmp_path / "c")  # nothing half-written
    ahead.close()  # idempotent


def test_claim_waits_for_the_video_in_preparation_and_does_not_redo_it(tiny_agent, videos, tmp_path):
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"), decoder="pyav", fps=5.0, chunk_size=8)
    encoded = []
    real = tiny_agent.encode_frames

    class Counting(GuardedScorer):
        def encode_frames(self, frames, batch_size=32):
            encoded.append(len(frames))
            time.sleep(0.02)
            return real(frames, batch_size=batch_size)

    selector.scorer = Counting(tiny_agent)
    with Lookahead(selector, depth=1) as ahead:
        ahead.plan(videos[:1])
        while not encoded:
            time.sleep(0.005)
        ahead.claim(videos[0])  # in preparation: waits, then the cache serves it
        result = selector.select(videos[0], QUESTION, num_frames=4)
    assert result.feature_cache_hit
    assert sum(encoded) == result.num_candidates  # encoded once, by the background


def test_lookahead_needs_a_cache_and_a_positive_depth(tiny_agent):
    with pytest.raises(InputError, match="feature cache"):
        Lookahead(FrameSelector(tiny_agent, cache=None), depth=2)
    with pytest.raises(InputError, match="lookahead=0"):
        Lookahead(FrameSelector(tiny_agent, cache=None), depth=0)


def test_serialized_scorer_calls_share_one_lock(tiny_agent, tmp_path):
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"))
    with Lookahead(selector, depth=1, serialize=True) as ahead:
        assert ahead.serialized and isinstance(selector.scorer, GuardedScorer)
        assert selector.scorer.encoder_fingerprint == tiny_agent.encoder_fingerprint
        assert ahead._worker_selector.scorer._lock is selector.scorer._lock
    assert selector.scorer is tiny_agent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux behaviour")
def test_background_runs_at_a_lower_priority_than_the_answering(tiny_agent, videos, tmp_path):
    import os

    from tspo_eval.lookahead import BACKGROUND_NICE

    seen = []
    real = tiny_agent.encode_frames

    class Recording(GuardedScorer):
        def encode_frames(self, frames, batch_size=32):
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return real(frames, batch_size=batch_size)

    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "c"), decoder="pyav", fps=5.0, chunk_size=8)
    selector.scorer = Recording(tiny_agent)
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with Lookahead(selector, depth=1) as ahead:
        ahead.plan(videos[:1])
        _wait_idle(ahead, 1)
    assert seen and set(seen) == {min(19, main + BACKGROUND_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the answering thread keeps its own
