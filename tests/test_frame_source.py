"""FrameSource: one code path for tspo / index / uniform frames, and its side log."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.errors import InputError, VideoError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import IndexRecord, IndexWriter
from tspo_eval.frame_source import (
    FrameSource,
    FrameSourceOptions,
    SelectionLog,
)
from tspo_eval.video import decode_frames

N_FRAMES, FPS = 90, 10.0  # 9 s -> candidates 0, 10, ..., 80


@pytest.fixture(scope="module")
def video(make_video) -> Path:
    return make_video("frame_source.mp4", n_frames=N_FRAMES, fps=FPS)


@pytest.fixture(scope="module")
def tspo_source(tiny_agent_dir, tmp_path_factory) -> FrameSource:
    cache = tmp_path_factory.mktemp("fs_cache")
    return FrameSource.from_options("tspo", tspo_path=str(tiny_agent_dir), num_frames=4, feature_cache=str(cache),
                                    tspo_device="cpu")


def _uniform_expected(n_frames: int, avg_fps: float, k: int) -> list[int]:
    """Independent reference: K evenly spaced candidates of the 1 fps grid."""
    grid = np.arange(0, n_frames, max(1, round(avg_fps)))
    positions = np.unique(np.round(np.linspace(0, len(grid) - 1, k)).astype(int))
    return [int(grid[p]) for p in positions]


@pytest.mark.parametrize(
    "options, needle",
    [
        ({"frame_selection": "tspo", "bogus": 1}, "bogus"),
        ({"frame_selection": "random"}, "frame_selection"),
        ({"frame_selection": "index"}, "frame_index"),
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": "many"}, "num_frames"),
        ({"missing": "skip"}, "missing"),
        ({"strategy": "best"}, "strategy"),
        ({"scorer": "siglip"}, "scorer"),
        ({"decoder": "ffmpeg"}, "decoder"),
    ],
)
def test_bad_options_are_clear_errors(options, needle):
    with pytest.raises(InputError, match=needle):
        FrameSourceOptions.from_dict(options)


def test_tspo_frames_decoded_at_selection_in_order_and_logged(tspo_source, video, tmp_path):
    tspo_source.log = SelectionLog(tmp_path / "sel_{task}.jsonl")
    try:
        frames, result = tspo_source.frames_for(video, "What colour is the bar?\nA. red\nB. blue", "q1", "mlvu_dev")
        _, result_mme = tspo_source.frames_for(video, "What colour is the bar?", "q2", "videomme")
    finally:
        tspo_source.log.close()
        tspo_source.log = None
    assert result.strategy == "topk" and result_mme.strategy == "bin-max"  # strategy=auto per task
    assert len(result.frame_indices) == 4 and result.frame_indices == sorted(result.frame_indices)
    assert set(result.frame_indices) <= set(range(0, N_FRAMES, 10))
    assert result.timestamps == pytest.approx([i / FPS for i in result.frame_indices])
    assert frames.dtype == np.uint8 and frames.shape[0] == 4
    np.testing.assert_array_equal(frames, decode_frames(video, result.frame_indices))
    # the test pattern's red channel rises with the frame number: temporal order is kept
    assert np.all(np.diff(frames[:, 0, 0, 0].astype(int)) > 0)
    mlvu = read_index(tmp_path / "sel_mlvu_dev.jsonl")["q1"]
    mme = read_index(tmp_path / "sel_videomme.jsonl")["q2"]
    assert (mlvu.benchmark, mlvu.frame_indices, mlvu.strategy) == ("mlvu", result.frame_indices, "topk")
    assert (mme.benchmark, mme.frame_indices) == ("videomme", result_mme.frame_indices)
    assert mlvu.video == video.name and mlvu.extra == {"frame_source": "tspo"}
    assert mlvu.agent_fingerprint == result.agent_fingerprint != ""


def test_uniform_mode_is_the_grid_baseline(video, tmp_path):
    source = FrameSource.from_options("uniform", num_frames=4, log=SelectionLog(tmp_path / "u.jsonl"))
    frames, result = source.frames_for(video, "anything", "u1", "tspo_synthetic")
    source.close()
    assert result.frame_indices == _uniform_expected(N_FRAMES, FPS, 4) == [0, 30, 50, 80]
    assert result.strategy == "uniform" and len(frames) == 4
    assert read_index(tmp_path / "u.jsonl")["u1"].frame_indices == [0, 30, 50, 80]
    assert source.selector is None  # no agent is loaded for the baseline


def _write_index(path: Path, rows: dict[str, list[int]]) -> Path:
    with IndexWriter(path) as writer:
        for qid, frames in rows.items():
            writer.write(IndexRecord(benchmark="synthetic", question_id=qid, video="frame_source.mp4", n_frames=N_FRAMES,
                                     avg_fps=FPS, candidate_stride=10, frame_indices=frames,
                                     timestamps=[f / FPS for f in frames], strategy="topk", scorer="tspo",
                                     agent_fingerprint="agentfp", clip_fingerprint="clipfp"))
    return path


def test_index_mode_uses_exactly_the_indexed_frames(video, tmp_path):
    index = _write_index(tmp_path / "index.jsonl", {"a": [3, 17, 44, 80], "short": [5, 60]})
    log = SelectionLog(tmp_path / "log.jsonl")
    source = FrameSource.from_options("index", frame_index=str(index), num_frames=4, log=log)
    frames, result = source.frames_for(video, "q", "a", "tspo_synthetic")
    assert result.frame_indices == [3, 17, 44, 80]  # off the 1 fps grid: taken as they are
    assert result.timestamps == pytest.approx([0.3, 1.7, 4.4, 8.0])
    # off the grid, the indexed frames are the candidates themselves (no scores)
    assert result.agent_fingerprint == "agentfp" and result.selected_positions == [0, 1, 2, 3]
    assert result.candidate_indices == [3, 17, 44, 80] and result.scores == [] and result.encoder_fingerprint == "clipfp"
    np.testing.assert_array_equal(frames, decode_frames(video, [3, 17, 44, 80]))
    assert source.frames_for(video, "q", "short", "tspo_synthetic")[1].frame_indices == [5, 60]  # short=keep
    _, fallback = source.frames_for(video, "q", "not-there", "tspo_synthetic")  # missing=uniform
    assert fallback.frame_indices == _uniform_expected(N_FRAMES, FPS, 4)
    source.close()
    logged = read_index(tmp_path / "log.jsonl")
    assert logged["a"].frame_indices == [3, 17, 44, 80] and logged["a"].extra == {"frame_source": "index"}
    assert logged["not-there"].extra == {"frame_source": "uniform:missing-from-index"}


def test_index_mode_missing_error_short_uniform_and_bad_frames(video, tmp_path):
    index = _write_index(tmp_path / "index.jsonl", {"short": [5, 60], "beyond": [10, 900]})
    strict = FrameSource.from_options("index", frame_index=str(index), num_frames=4, missing="error")
    with pytest.raises(InputError, match="not-there"):
        strict.frames_for(video, "q", "not-there", "tspo_synthetic")
    with pytest.raises(VideoError, match="900"):
        strict.frames_for(video, "q", "beyond", "tspo_synthetic")
    reference_like = FrameSource.from_options("index", frame_index=str(index), num_frames=4, short="uniform")
    assert reference_like.frames_for(video, "q", "short", "x")[1].frame_indices == _uniform_expected(N_FRAMES, FPS, 4)


def test_index_mode_reads_tspo_published_file(video, tmp_path):
    rows = [{"video_name": video.name, "duration": 9.0, "question": "What?\n(A) x\n(B) y", "candidates": ["x", "y"],
             "answer": "A", "task_type": "needle", "question_id": "Q7", "frame_idx": [10.0, 20.0, 70.0]}]
    published = tmp_path / "TSPO_MLVU_frameIdx.json"
    published.write_text(json.dumps(rows))
    source = FrameSource.from_options("index", frame_index=str(published), num_frames=64)
    _, result = source.frames_for(video, "What?", "Q7", "mlvu_dev")
    assert result.frame_indices == [10, 20, 70]
    assert result.timestamps == pytest.approx([1.0, 2.0, 7.0])  # timed with the video's own fps


@pytest.mark.parametrize("mode", ["uniform", "tspo"])
def test_missing_video_is_a_video_error(mode, tspo_source, tmp_path):
    source = tspo_source if mode == "tspo" else FrameSource.from_options("uniform", num_frames=4)
    with pytest.raises(VideoError, match="gone.mp4"):
        source.frames_for(tmp_path / "gone.mp4", "question", "g1", "tspo_synthetic")


def test_last_record_is_the_record_of_the_last_answer(video, tmp_path):
    source = FrameSource.from_options("uniform", num_frames=3)
    _, result = source.frames_for(video, "q", "r1", "videomme")
    record = source.last_record
    assert (record.question_id, record.benchmark, record.video) == ("r1", "videomme", video.name)
    assert record.frame_indices == result.frame_indices and record.extra == {"frame_source": "uniform"}
    with pytest.raises(VideoError):
        source.frames_for(tmp_path / "gone.mp4", "q", "r2", "videomme")
    assert source.last_record is None  # a failed answer leaves no stale record behind


def test_index_mode_reads_frames_from_an_lmms_eval_samples_file(video, tmp_path):
    """A run of our models on a tspo_* task records each answer's frames in its samples file:
    that file is an index for the next run (``frame_index=<date>_samples_<task>.jsonl``)."""
    from tspo_eval.errors import AnnotationError

    recorded = IndexRecord(benchmark="synthetic", question_id="s1", video=video.name, n_frames=N_FRAMES, avg_fps=FPS,
                           candidate_stride=10, frame_indices=[7, 21, 64], timestamps=[0.7, 2.1, 6.4], strategy="topk",
                           scorer="tspo", agent_fingerprint="a", clip_fingerprint="c", extra={"frame_source": "tspo"})
    samples = tmp_path / "20260101_120000_samples_tspo_synthetic.jsonl"
    lines = [{"doc_id": 0, "filtered_resps": "A", "tspo_accuracy": {"question_id": "s1", "frames": recorded.to_dict()}},
             {"doc_id": 1, "filtered_resps": "", "tspo_accuracy": {"question_id": "s2", "frames": None,
                                                                   "frames_error": "gone.mp4: no such video file"}}]
    samples.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source = FrameSource.from_options("index", frame_index=str(samples), num_frames=3, missing="error")
    assert source.frames_for(video, "q", "s1", "tspo_synthetic")[1].frame_indices == [7, 21, 64]
    with pytest.raises(InputError, match="s2"):  # its video had failed: no frames on record
        source.frames_for(video, "q", "s2", "tspo_synthetic")
    empty = tmp_path / "20260101_120000_samples_videomme.jsonl"
    empty.write_text(json.dumps({"doc_id": 0, "videomme_perception_score": {"question_id": "x"}}) + "\n")
    with pytest.raises(AnnotationError, match="holds no frames"):
        FrameSource.from_options("index", frame_index=str(empty), num_frames=3).frames_for(video, "q", "x", "videomme")
