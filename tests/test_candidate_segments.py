"""A video split into segments that several candidate workers decode side by side: whole chunks,
the whole grid, the serial features to the byte, one dying segment fails only its video."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tspo_eval.candidate_pool import CandidatePool, worker_settings
from tspo_eval.candidate_workers import segment_rows
from tspo_eval.selection import FrameSelector

CHUNK = 4


def test_segment_rows_cover_the_grid_in_whole_chunks() -> None:
    for total in (0, 1, 31, 32, 33, 100, 1000, 3600):
        for segments in (1, 2, 3, 7, 16):
            parts = [segment_rows(total, 32, i, segments, min_chunks=1) for i in range(segments)]
            assert [row for part in parts for row in part] == list(range(total)), (total, segments)
            assert all(part.start % 32 == 0 for part in parts if len(part))
    assert segment_rows(128, 32, 1, 2) == range(128, 128)  # 4 chunks: one segment of at least 4 chunks
    assert segment_rows(256, 32, 0, 2) == range(0, 128) and segment_rows(256, 32, 1, 2) == range(128, 256)
    assert [len(segment_rows(3600, 32, i, 16)) for i in range(16)].count(0) == 0


@pytest.fixture(scope="module")
def videos(make_video):
    """Two 60 s H.264 videos with B-frames (60 candidates = 15 chunks of 4) and a VP9 one."""
    out = {name: make_video(f"segments_{name}.mp4", n_frames=600, fps=10.0, gop=50, bframes=3, width=64, height=48)
           for name in ("a", "b")}
    import av

    if "libvpx-vp9" in av.codecs_available:
        out["vp9"] = make_video("segments_vp9.webm", codec="libvpx-vp9", n_frames=300, fps=10.0, gop=50)
    return out


def _serial(selector: FrameSelector, path) -> torch.Tensor:
    _meta, _grid, feats = selector.candidate_features(str(path))
    return feats


@pytest.mark.parametrize("preprocess", [False, True])
def test_a_split_video_gives_the_serial_features_to_the_byte(tiny_agent, videos, preprocess: bool) -> None:
    selector = FrameSelector(tiny_agent, cache=False, decoder="pyav", chunk_size=CHUNK)
    expected = _serial(selector, videos["a"])
    settings = replace(worker_settings(selector, preprocess=preprocess), min_segment_chunks=1)
    with CandidatePool(selector, 3, settings) as pool:
        assert pool.segments_for(str(videos["a"]), 1) == 3
        (outcome,) = list(pool.run([videos["a"]]))
        assert pool.peak_workers == 3
    assert outcome.error is None and not outcome.cached
    assert outcome.features.shape == expected.shape == (60, expected.shape[1])
    assert outcome.features.numpy().tobytes() == expected.numpy().tobytes()
    assert outcome.grid.tolist() == list(range(0, 600, 10)) and outcome.metadata.decoder == "pyav"


def test_auto_splits_only_codecs_it_decodes_with_pyav(tiny_agent, videos) -> None:
    if "vp9" not in videos:
        pytest.skip("no VP9 encoder")
    auto = FrameSelector(tiny_agent, cache=False, decoder="auto", chunk_size=CHUNK)
    with CandidatePool(auto, 4) as pool:
        assert pool.segments_for(str(videos["a"]), 1) == 4      # H.264: PyAV, every segment alike
        assert pool.segments_for(str(videos["vp9"]), 1) == 1    # decord, which may hand over to PyAV halfway
        assert pool.segments_for(str(videos["a"]), 2) == 2 and pool.segments_for(str(videos["a"]), 4) == 1
        assert pool.segments_for("/nonexistent/video.mp4", 1) == 1  # the worker reports it
    explicit = FrameSelector(tiny_agent, cache=False, decoder="pyav", chunk_size=CHUNK)
    with CandidatePool(explicit, 4) as pool:
        assert pool.segments_for(str(videos["vp9"]), 1) == 4


def test_a_dying_segment_fails_its_video_only(tiny_agent, videos) -> None:
    from tspo_eval.testing.worker_faults import CrashOn

    selector = FrameSelector(tiny_agent, cache=False, decoder="pyav", chunk_size=CHUNK)
    expected = _serial(selector, videos["b"])
    victim = videos["a"].name
    settings = replace(worker_settings(selector, preprocess=False, on_job=CrashOn(victim, "segv")),
                       min_segment_chunks=1)
    with CandidatePool(selector, 4, settings) as pool:
        outcomes = {o.path: o for o in pool.run([videos["a"], videos["b"]])}
    assert len(outcomes) == 2
    dead = outcomes[str(videos["a"])]
    assert dead.features is None and "worker process died (signal SIGSEGV)" in dead.error and victim in dead.error
    alive = outcomes[str(videos["b"])]
    assert alive.error is None and alive.features.numpy().tobytes() == expected.numpy().tobytes()


def test_frame_selector_with_workers_selects_and_caches_the_same_bytes(tiny_agent, videos, tmp_path) -> None:
    """A cold video through ``FrameSelector(workers=3)`` (3 segments): the same result and cache entry."""
    from tspo_eval.frame_index_cache import FeatureCache

    serial = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "serial"), chunk_size=CHUNK)
    parallel = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "parallel"), chunk_size=CHUNK, workers=3)
    question = "When does the bar move fastest?"
    one = serial.select(videos["a"], question, num_frames=5)
    three = parallel.select(videos["a"], question, num_frames=5)
    assert not three.feature_cache_hit and three.to_dict() == one.to_dict()
    entries = [sorted(p.read_bytes() for p in (tmp_path / name).rglob("*.safetensors")) for name in ("serial", "parallel")]
    assert len(entries[0]) == 1 and _tensor_bytes(tmp_path / "parallel") == _tensor_bytes(tmp_path / "serial")


def _tensor_bytes(folder) -> bytes:
    from safetensors import safe_open

    (path,) = list(folder.rglob("*.safetensors"))
    with safe_open(str(path), "pt") as fh:
        (name,) = list(fh.keys())
        return fh.get_tensor(name).numpy().tobytes()


def test_select_cli_workers_option(tiny_agent_dir, videos, capsys) -> None:
    import json

    from tspo_eval.cli import main

    base = ["select", str(videos["b"]), "-q", "Where is the bar?", "--agent", str(tiny_agent_dir), "-k", "4",
            "--no-cache", "--json"]
    assert main(base) == 0
    alone = json.loads(capsys.readouterr().out)
    assert main([*base, "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == alone
    assert main([*base, "--workers", "0"]) == 2
    assert "--workers must be a positive integer, got 0" in capsys.readouterr().err


def test_videos_that_would_not_be_split_stay_in_this_process(tiny_agent, videos, monkeypatch) -> None:
    """No worker starts for a video too short to split, or one ``auto`` may decode with two backends."""
    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr(CandidatePool, "run", no_pool)
    short = FrameSelector(tiny_agent, cache=False, chunk_size=32, workers=3)  # 60 candidates < 2 segments x 4 chunks
    assert short.candidate_features(str(videos["a"]))[2].shape[0] == 60
    if "vp9" in videos:
        vp9 = FrameSelector(tiny_agent, cache=False, decoder="auto", chunk_size=2, workers=3)
        assert vp9.candidate_features(str(videos["vp9"]))[0].decoder == "decord"
