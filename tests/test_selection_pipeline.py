"""FrameSelector with the real TemporalAgent (tiny checkpoint): one encode per video, cache
equivalence, streaming, results, the uniform baseline and bad requests."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tspo_eval.errors import InputError, VideoError
from tspo_eval.frame_index_cache import FeatureCache
from tspo_eval.selection import (
    FrameSelector,
    SelectionResult,
    _prefetch,
    uniform_selection,
)
from tspo_eval.testing.scorers import DelegatingScorer
from tspo_eval.video import candidate_grid, decode_frames, open_video

QUESTIONS = [
    "What colour is the bar?",
    "When does the screen turn red?\nOptions:\nA. start\nB. end",
    "How many times does the bar move?\nA. once\nB. twice",
]


class CountingScorer(DelegatingScorer):
    """Delegates to a real scorer and records every ``encode_frames`` call (chunk lengths, threads)."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.device = None  # unknown (tests set it)

    def encode_frames(self, frames, batch_size: int = 32):
        self.calls.append(len(frames))
        self.threads.add(threading.current_thread().name)
        return super().encode_frames(frames, batch_size=batch_size)


@pytest.fixture(scope="module")
def agent(tiny_agent_dir):
    from tspo_eval.agent import TemporalAgent

    return TemporalAgent.from_pretrained(str(tiny_agent_dir), device="cpu")


@pytest.fixture(scope="module")
def video(make_video) -> Path:
    return make_video("sel_clip.mp4", n_frames=600, fps=30.0, gop=60)  # 20 candidates at 1 fps


@pytest.fixture(scope="module")
def short_video(make_video) -> Path:
    return make_video("sel_short.mp4", n_frames=75, fps=25.0)  # 3 candidates


def _comparable(result: SelectionResult) -> dict:
    d = result.to_dict()
    d.pop("feature_cache_hit")
    return d


def test_select_many_encodes_each_candidate_once(agent, video, tmp_path) -> None:
    scorer = CountingScorer(agent)
    selector = FrameSelector(scorer, cache=FeatureCache(tmp_path / "c"), chunk_size=6)
    results = selector.select_many(video, QUESTIONS, num_frames=5, strategy="topk")
    assert len(results) == 3
    assert sum(scorer.calls) == 20 and max(scorer.calls) <= 6  # 20 candidates, streamed in chunks of <= 6
    assert [r.question for r in results] == QUESTIONS
    assert not results[0].feature_cache_hit
    calls = len(scorer.calls)
    again = selector.select(video, QUESTIONS[1], num_frames=5, strategy="topk")  # in-memory features
    assert len(scorer.calls) == calls and again.feature_cache_hit
    assert _comparable(again) == _comparable(results[1])
    fresh = CountingScorer(agent)  # new process-like selector: served from the disk cache
    from_disk = FrameSelector(fresh, cache=FeatureCache(tmp_path / "c")).select_many(video, QUESTIONS, 5, "topk")
    assert fresh.calls == [] and all(r.feature_cache_hit for r in from_disk)
    assert [_comparable(r) for r in from_disk] == [_comparable(r) for r in results]


def test_results_identical_with_and_without_cache(agent, video, tmp_path) -> None:
    cached = FrameSelector(agent, cache=FeatureCache(tmp_path / "c"), chunk_size=8)
    cached.select(video, QUESTIONS[0])  # fill the disk cache
    cached_again = FrameSelector(agent, cache=FeatureCache(tmp_path / "c"), chunk_size=8)
    uncached = FrameSelector(agent, cache=False, chunk_size=8, prefetch=False)  # same batches: bit-identical
    for strategy in ("topk", "bin-max", "aks", "uniform"):
        a = cached_again.select(video, QUESTIONS[2], num_frames=6, strategy=strategy)
        b = uncached.select(video, QUESTIONS[2], num_frames=6, strategy=strategy)
        assert a.feature_cache_hit and b.feature_cache_hit == (strategy != "topk")  # then served from memory
        assert _comparable(a) == _comparable(b), strategy


def test_streamed_features_equal_one_batch_encoding(agent, video) -> None:
    scorer = CountingScorer(agent)
    meta, grid, feats = FrameSelector(scorer, cache=None, chunk_size=7).candidate_features(video)
    assert grid.tolist() == list(range(0, 600, 30)) and meta.n_frames == 600
    assert feats.shape == (20, 768) and feats.dtype == torch.float32
    assert scorer.calls == [7, 7, 6] and "tspo-decode" not in scorer.threads  # encoding stays on the caller
    reference = agent.encode_frames(decode_frames(video, grid), batch_size=32)
    torch.testing.assert_close(feats, reference, rtol=1e-4, atol=1e-5)


def test_result_fields_and_json(agent, video) -> None:
    result = FrameSelector(agent, cache=False, decoder="pyav").select(video, QUESTIONS[1], num_frames=4, strategy="bin-max")
    d = json.loads(json.dumps(result.to_dict()))
    assert d["num_candidates"] == 20 == len(d["scores"]) == len(d["candidate_indices"])
    assert len(d["frame_indices"]) == 4 and d["frame_indices"] == sorted(d["frame_indices"])
    assert d["frame_indices"] == [d["candidate_indices"][p] for p in d["selected_positions"]]
    assert d["timestamps"] == [pytest.approx(f / 30.0) for f in d["frame_indices"]]
    scores = torch.tensor(d["scores"])
    expected = agent.select(scores, 4, "bin-max").tolist()
    assert d["selected_positions"] == expected
    assert (d["strategy"], d["scorer"], d["fps"], d["avg_fps"], d["n_frames"]) == ("bin-max", "tspo", 1.0, 30.0, 600)
    assert d["agent_fingerprint"] == agent.fingerprint and d["clip_fingerprint"] == agent.encoder_fingerprint


def test_topk_picks_the_highest_scores(agent, video) -> None:
    result = FrameSelector(agent, cache=False).select(video, QUESTIONS[0], num_frames=5, strategy="topk")
    scores = np.array(result.scores)
    assert sorted(result.selected_positions) == sorted(np.argsort(-scores)[:5].tolist())
    assert result.selected_positions == sorted(result.selected_positions)


def test_fewer_candidates_than_k_keeps_all(agent, short_video) -> None:
    for strategy in ("topk", "bin-max", "aks", "uniform"):
        result = FrameSelector(agent, cache=False).select(short_video, QUESTIONS[0], num_frames=64, strategy=strategy)
        assert result.frame_indices == [0, 25, 50] and result.selected_positions == [0, 1, 2]


def test_other_candidate_rate_and_decoders_change_the_cache_key(agent, video, tmp_path) -> None:
    cache = FeatureCache(tmp_path / "c")
    half = FrameSelector(agent, cache=cache, fps=0.5).select(video, QUESTIONS[0], num_frames=3)
    assert half.candidate_indices == list(range(0, 600, 60)) and half.fps == 0.5
    FrameSelector(agent, cache=cache, fps=1.0).select(video, QUESTIONS[0], num_frames=3)
    FrameSelector(agent, cache=cache, decoder="decord").select(video, QUESTIONS[0], num_frames=3)
    assert cache.info()["entries"] == 3


def test_auto_cache_key_records_the_decoder_that_decoded(agent, video, tmp_path) -> None:
    """With ``decoder="auto"`` the cache entry is keyed by the backend that really decoded: PyAV
    for an H.264 file (sparse decoding) and for an AV1 file (decord has no AV1 decoder), which an
    explicit ``decoder="pyav"`` run then reuses; an explicit ``decord`` run never gets PyAV's features."""
    from tspo_eval.testing.videos import available_encoder, write_test_video

    cache = FeatureCache(tmp_path / "c")
    h264 = FrameSelector(agent, cache=cache).select(video, QUESTIONS[0], num_frames=3)
    assert h264.decoder == "pyav"
    assert FrameSelector(agent, cache=cache, decoder="pyav").select(video, QUESTIONS[0], num_frames=3).feature_cache_hit
    assert not FrameSelector(agent, cache=cache, decoder="decord").select(video, QUESTIONS[0], num_frames=3).feature_cache_hit
    codec = available_encoder("av1")
    if codec is None:
        pytest.skip("no AV1 encoder in this PyAV build")
    av1 = write_test_video(tmp_path / "clip_av1.mp4", n_frames=100, fps=25.0, codec=codec, gop=50)
    first = FrameSelector(agent, cache=cache).select(av1, QUESTIONS[0], num_frames=3)
    assert first.decoder == "pyav" and not first.feature_cache_hit
    explicit = FrameSelector(agent, cache=cache, decoder="pyav").select(av1, QUESTIONS[0], num_frames=3)
    assert explicit.feature_cache_hit and explicit.frame_indices == first.frame_indices
    assert cache.info()["entries"] == 3  # H.264 via PyAV (auto and explicit), H.264 via decord, AV1 via PyAV


def test_bad_requests(agent, video, tmp_path) -> None:
    selector = FrameSelector(agent, cache=False)
    for k in (0, -3, True, 2.5):
        with pytest.raises(InputError):
            selector.select(video, QUESTIONS[0], num_frames=k)
    with pytest.raises(InputError, match="unknown strategy"):
        selector.select(video, QUESTIONS[0], strategy="random")
    with pytest.raises(InputError, match="resolve"):
        selector.select(video, QUESTIONS[0], strategy="auto")
    with pytest.raises(InputError):
        selector.select(video, "   ")
    with pytest.raises(InputError):
        selector.select_many(video, "one string")
    with pytest.raises(InputError, match="unknown decoder"):
        FrameSelector(agent, decoder="ffmpeg")
    with pytest.raises(InputError):
        FrameSelector(agent, fps=0)
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match="not found") as info:
        selector.select(missing, QUESTIONS[0])
    assert str(missing) in str(info.value)
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoError, match="not a video file"):
        FrameSelector(agent, cache=FeatureCache(tmp_path / "c")).select(text, QUESTIONS[0])


def test_uniform_selection_baseline(video, short_video) -> None:
    result = uniform_selection(video, num_frames=4, decoder="pyav")
    with open_video(video, "pyav") as reader:
        grid = candidate_grid(reader.metadata)
    positions = np.unique(np.round(np.linspace(0, len(grid) - 1, 4)).astype(int)).tolist()
    assert result.selected_positions == positions
    assert result.frame_indices == [int(grid[p]) for p in positions]
    assert result.strategy == "uniform" and result.scores == [] and result.num_candidates == 20
    assert uniform_selection(short_video, num_frames=10).frame_indices == [0, 25, 50]
    with pytest.raises(InputError):
        uniform_selection(video, num_frames=0)


def test_selector_options_build_the_real_scorer(tiny_agent_dir, video, tmp_path) -> None:
    from tspo_eval.selector_options import SelectorOptions

    selector = FrameSelector.build(SelectorOptions(scorer="tspo", agent=str(tiny_agent_dir), device="cpu", cache_dir=tmp_path / "c",
                               decoder="pyav"))
    result = selector.select(video, QUESTIONS[0], num_frames=3)
    assert selector.cache is not None and selector.cache.root == tmp_path / "c"
    assert selector.cache.info()["entries"] == 1 and result.scorer == "tspo"
    clip = FrameSelector.build(SelectorOptions(scorer="clip", agent=str(tiny_agent_dir), device="cpu", cache_dir=tmp_path / "c",
                           decoder="pyav"))
    clip_result = clip.select(video, QUESTIONS[0], num_frames=3)
    assert clip_result.scorer == "clip" and clip_result.feature_cache_hit  # the agent's CLIP: shared features
    assert clip_result.candidate_indices == result.candidate_indices


def test_progress_bar_when_asked(agent, video, capsys) -> None:
    FrameSelector(agent, cache=False, progress=True, chunk_size=10).candidate_features(video)
    assert "encoding sel_clip.mp4" in capsys.readouterr().err


def test_decoding_overlaps_encoding_only_off_the_cpu(agent, video, monkeypatch) -> None:
    import tspo_eval.selection as selection

    overlapped: list[bool] = []
    real_prefetch = selection._prefetch

    def spy(*args, **kwargs):
        overlapped.append(True)
        return real_prefetch(*args, **kwargs)

    monkeypatch.setattr(selection, "_prefetch", spy)
    on_cpu = CountingScorer(agent)
    on_cpu.device = agent.device  # the tiny agent runs on the CPU
    on_gpu = CountingScorer(agent)
    on_gpu.device = torch.device("cuda", 0)  # only the attribute: nothing runs on it here
    assert FrameSelector(on_cpu, cache=False).prefetch is False
    assert FrameSelector(on_gpu, cache=False).prefetch is True
    assert FrameSelector(CountingScorer(agent), cache=False).prefetch is True  # device unknown
    assert FrameSelector(on_cpu, cache=False, prefetch=True).prefetch is True  # explicit wins
    _, _, sequential = FrameSelector(on_cpu, cache=False, chunk_size=8).candidate_features(video)
    assert overlapped == [] and on_cpu.calls == [8, 8, 4]  # decoded and encoded in turn
    _, _, prefetched = FrameSelector(on_cpu, cache=False, chunk_size=8, prefetch=True).candidate_features(video)
    assert overlapped == [True] and torch.equal(sequential, prefetched)  # same frames, same batches


def test_prefetch_overlaps_propagates_errors_and_stops_early() -> None:
    produced: list[int] = []

    def chunks(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise VideoError("/v.mp4", "decoding failed")
            produced.append(i)
            yield np.full((2, 2, 2, 3), i, np.uint8)

    waits: list[int] = []
    got = []
    for c in _prefetch(chunks(5), on_wait=lambda: waits.append(len(produced))):
        got.append(int(c[0, 0, 0, 0]))
        time.sleep(0.05)  # a slow consumer: the producer must pause before waiting
    assert got == [0, 1, 2, 3, 4] and waits and waits[-1] == 5  # also paused once everything is produced
    with pytest.raises(VideoError, match="decoding failed"):
        list(_prefetch(chunks(5, fail_at=2)))
    produced.clear()
    gen = _prefetch(chunks(1000), depth=1)
    next(gen)
    gen.close()  # the consumer stops: the producer must stop too, not decode the rest
    time.sleep(0.2)
    assert len(produced) <= 4 and not [t for t in threading.enumerate() if t.name == "tspo-decode"]


def test_encoder_failure_stops_the_decoding_thread(agent, video, tmp_path) -> None:
    class Failing(CountingScorer):
        def encode_frames(self, frames, batch_size: int = 32):
            if len(self.calls) == 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().encode_frames(frames, batch_size)

    cache = FeatureCache(tmp_path / "c")
    scorer = Failing(agent)
    with pytest.raises(RuntimeError, match="simulated"):
        FrameSelector(scorer, cache=cache, chunk_size=4).select(video, QUESTIONS[0])
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "tspo-decode"]
    assert cache.info()["entries"] == 0  # nothing half-computed was stored
