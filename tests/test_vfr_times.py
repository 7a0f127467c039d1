"""True times for variable-frame-rate videos: the candidate grid stays frame-number based, every
reported time (reader, SelectionResult, CLI JSON, index records, prompt time instruction, index
runs) is the frame's presentation time, not ``frame_index / avg_fps``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.cli import main
from tspo_eval.frame_index_cache import FeatureCache
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import IndexRecord, IndexWriter
from tspo_eval.selection import FrameSelector, uniform_selection
from tspo_eval.testing.videos import write_test_video
from tspo_eval.video import candidate_grid, open_video

try:
    import torchcodec.decoders  # noqa: F401

    BACKENDS = ("auto", "decord", "pyav", "torchcodec")
except Exception:
    BACKENDS = ("auto", "decord", "pyav")

# 30 frames 1/30 s apart, then 30 frames 0.1 s apart (pts gaps 1x then 3x): 60 frames in 4 s
TRUE_TIMES = [i / 30 for i in range(30)] + [1.0 + 0.1 * i for i in range(30)]
QUESTION = "When does the bar move slowly?"


def true_time(frame: int) -> float:
    return TRUE_TIMES[frame]


@pytest.fixture(scope="module", params=["mp4", "mkv", "webm"])
def vfr(request, tmp_path_factory) -> Path:
    codec = {"mp4": "libx264", "mkv": "libx265", "webm": "libvpx-vp9"}[request.param]
    return write_test_video(tmp_path_factory.mktemp("vfr") / f"vfr.{request.param}", n_frames=60, fps=15.0,
                            codec=codec, frame_times=TRUE_TIMES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grid_is_frame_numbers_times_are_presentation_times(vfr: Path, backend: str) -> None:
    with open_video(vfr, backend) as reader:
        meta = reader.metadata
        grid = candidate_grid(meta)
        times = reader.frame_times(grid)
        all_times = reader.frame_times(np.arange(meta.n_frames))
    assert meta.n_frames == 60 and 14.9 < meta.avg_fps < 15.2
    assert grid.tolist() == [0, 15, 30, 45]  # stride round(avg_fps) = 15 frames, whatever their times
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 2.5], atol=1e-3)
    np.testing.assert_allclose(all_times, TRUE_TIMES, atol=1e-3)
    assert abs(45 / meta.avg_fps - 2.5) > 0.4  # the old frame_index / avg_fps would be half a second off


def test_selection_results_carry_true_times(vfr: Path, tiny_agent, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    first = FrameSelector(tiny_agent, cache=cache).select(vfr, QUESTION, num_frames=2)
    again = FrameSelector(tiny_agent, cache=cache).select(vfr, QUESTION, num_frames=2)  # features from the cache
    assert again.feature_cache_hit and again.frame_indices == first.frame_indices
    for result in (first, again):
        assert result.candidate_indices == [0, 15, 30, 45]
        assert result.candidate_timestamps == pytest.approx([0.0, 0.5, 1.0, 2.5], abs=1e-3)
        assert result.timestamps == pytest.approx([true_time(f) for f in result.frame_indices], abs=1e-3)
        assert result.to_dict()["timestamps"] == result.timestamps
    selector = FrameSelector(tiny_agent, cache=False)
    np.testing.assert_allclose(selector.candidate_times(vfr), [0.0, 0.5, 1.0, 2.5], atol=1e-3)
    baseline = uniform_selection(vfr, num_frames=4)
    assert baseline.frame_indices == [0, 15, 30, 45]
    assert baseline.timestamps == pytest.approx([0.0, 0.5, 1.0, 2.5], abs=1e-3)


def test_index_records_and_prompt_times(vfr: Path, tiny_agent, tmp_path: Path) -> None:
    from tspo_eval.answering.request import AnswerRequest, time_instruction
    from tspo_eval.frame_source import FrameSource
    from tspo_eval.video import decode_frames

    result = FrameSelector(tiny_agent, cache=False).select(vfr, QUESTION, num_frames=4)
    assert result.frame_indices == [0, 15, 30, 45]  # T <= K: every candidate
    record = IndexRecord.from_selection(result, "synthetic", "q1", vfr.name)
    assert record.timestamps == pytest.approx([0.0, 0.5, 1.0, 2.5], abs=1e-3)
    request = AnswerRequest.from_selection(result, decode_frames(vfr, result.frame_indices), QUESTION)
    assert "These frames are located at 0.00s,0.50s,1.00s,2.50s." in time_instruction(request)
    assert not request.times_follow_frame_numbers

    # an index run (frames from an index file) times the indexed frames from the video itself
    index = tmp_path / "index.jsonl"
    with IndexWriter(index) as writer:
        writer.write(IndexRecord(benchmark="synthetic", question_id="q2", video=vfr.name, n_frames=60, avg_fps=15.0,
                                 candidate_stride=15, frame_indices=[10, 35, 59], timestamps=[], strategy="topk",
                                 scorer="tspo", agent_fingerprint="a", clip_fingerprint="c"))
    source = FrameSource.from_options("index", frame_index=str(index), num_frames=3)
    frames, from_index = source.frames_for(vfr, QUESTION, "q2", "tspo_synthetic")
    source.close()
    assert from_index.frame_indices == [10, 35, 59] and frames.shape[0] == 3
    assert from_index.timestamps == pytest.approx([true_time(10), true_time(35), true_time(59)], abs=1e-3)
    assert read_index(index)["q2"].frame_indices == [10, 35, 59]


def test_cli_json_and_plot_use_true_times(vfr: Path, capsys, tmp_path: Path, tiny_agent_dir: Path, monkeypatch) -> None:
    import tspo_eval.visualize as visualize

    plotted: dict[str, list[float]] = {}
    real_timeline, real_sheet = visualize.score_timeline, visualize.contact_sheet

    def timeline_spy(times, *args, **kwargs):
        plotted["plot"] = list(times)
        return real_timeline(times, *args, **kwargs)

    def sheet_spy(frames, times, *args, **kwargs):
        plotted["sheet"] = list(times)
        return real_sheet(frames, times, *args, **kwargs)

    monkeypatch.setattr(visualize, "score_timeline", timeline_spy)
    monkeypatch.setattr(visualize, "contact_sheet", sheet_spy)
    status = main(["select", str(vfr), "-q", QUESTION, "--agent", str(tiny_agent_dir), "-k", "2", "--no-cache",
                   "--json", "--plot", str(tmp_path / "plot.png"), "--contact-sheet", str(tmp_path / "sheet.png")])
    out, err = capsys.readouterr()
    assert status == 0, err
    result = json.loads(out)
    assert result["timestamps"] == pytest.approx([true_time(f) for f in result["frame_indices"]], abs=1e-3)
    assert plotted["plot"] == pytest.approx([0.0, 0.5, 1.0, 2.5], abs=1e-3)
    assert plotted["sheet"] == pytest.approx(result["timestamps"])
    assert (tmp_path / "plot.png").stat().st_size > 0 and (tmp_path / "sheet.png").stat().st_size > 0
