"""SelectionResult: primary fields, derived frame numbers/times, the one keyword-only constructor,
the unchanged JSON layout, and the relation ``frame_indices == candidates[positions]`` for every
producer (scorer, uniform baseline, index frames on and off the candidate grid)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tspo_eval.errors import VideoError
from tspo_eval.frame_index_cache.index_store import IndexRecord
from tspo_eval.selection import FrameSelector, given_selection, uniform_selection
from tspo_eval.selection_result import SelectionResult
from tspo_eval.video import VideoMetadata, candidate_grid, open_video

META = VideoMetadata(path="/v/clip.mp4", n_frames=100, avg_fps=25.0, duration=4.0, width=64, height=48,
                     decoder="pyav")


def _result(**changes) -> SelectionResult:
    args = dict(video="/v/clip.mp4", question="What?", metadata=META, candidates=np.array([0, 25, 50, 75]),
                candidate_times=np.array([0.0, 1.0, 2.0, 3.0000004]), positions=torch.tensor([1, 3]),
                scores=torch.tensor([0.5, 2.0, -1.0, 1.5]), strategy="topk", scorer="tspo", fps=1.0,
                agent_fingerprint="agentfp", encoder_fingerprint="encfp", feature_cache_hit=True)
    return SelectionResult.from_candidates(**{**args, **changes})


def test_to_dict_keeps_the_layout_and_values() -> None:
    """The dict (CLI --json, samples, older tools) is what the stored-fields dataclass wrote."""
    d = _result().to_dict()
    assert d == {
        "video": "/v/clip.mp4", "question": "What?", "frame_indices": [25, 75], "timestamps": [1.0, 3.0],
        "candidate_indices": [0, 25, 50, 75], "scores": [0.5, 2.0, -1.0, 1.5], "selected_positions": [1, 3],
        "strategy": "topk", "scorer": "tspo", "num_candidates": 4, "fps": 1.0, "avg_fps": 25.0, "n_frames": 100,
        "agent_fingerprint": "agentfp", "clip_fingerprint": "encfp", "feature_cache_hit": True,
        "candidate_timestamps": [0.0, 1.0, 2.0, 3.0], "decoder": "pyav",
    }
    assert list(d) == ["video", "question", "frame_indices", "timestamps", "candidate_indices", "scores",
                       "selected_positions", "strategy", "scorer", "num_candidates", "fps", "avg_fps", "n_frames",
                       "agent_fingerprint", "clip_fingerprint", "feature_cache_hit", "candidate_timestamps", "decoder"]
    plain = json.loads(json.dumps(d))  # tensors and arrays went in; plain Python numbers came out
    assert plain == d and all(type(i) is int for i in d["candidate_indices"] + d["selected_positions"])
    assert all(type(s) is float for s in d["scores"])
    d["candidate_indices"].append(99)  # a copy: the result is not changed through it
    assert _result().num_candidates == 4


def test_derived_fields_follow_the_primary_ones() -> None:
    result = _result()
    assert result.frame_indices == [25, 75] and result.timestamps == [1.0, 3.0] and result.num_candidates == 4
    assert (result.avg_fps, result.n_frames, result.decoder, result.candidate_stride) == (25.0, 100, "pyav", 25)
    moved = dataclasses.replace(result, selected_positions=[0, 2])
    assert moved.frame_indices == [0, 50] and moved.timestamps == [0.0, 2.0]


def test_one_keyword_only_constructor_and_a_frozen_result() -> None:
    with pytest.raises(TypeError):
        SelectionResult.from_candidates("/v/clip.mp4", "What?")  # type: ignore[misc]
    with pytest.raises(TypeError):
        SelectionResult("/v/clip.mp4", "What?", [0], [0.0], [], [0], "topk", "tspo", 1.0, META)  # type: ignore[misc]
    result = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.question = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        result.frame_indices = [1]  # type: ignore[misc]


@pytest.mark.parametrize("changes, needle", [
    ({"positions": [1, 4]}, "outside 0..3"),
    ({"positions": [3, 1]}, "temporal order"),
    ({"scores": [1.0, 2.0]}, "2 scores for 4 candidates"),
    ({"candidate_times": [0.0, 1.0]}, "2 candidate times for 4 candidates"),
    ({"candidates": [0, 50, 25, 75]}, "temporal order"),
    ({"candidates": [0, 25, 50, 100]}, "outside frames 0..99"),
])
def test_parts_that_do_not_fit_are_refused_naming_the_video(changes: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle) as info:
        _result(**changes)
    assert "/v/clip.mp4" in str(info.value)


def test_no_scores_is_allowed() -> None:
    result = _result(scores=())
    assert result.scores == [] and result.frame_indices == [25, 75]


@pytest.fixture(scope="module")
def video(make_video) -> Path:
    return make_video("result_clip.mp4", n_frames=120, fps=20.0)  # 6 candidates at 1 fps: 0, 20, .., 100


def _check_relation(result: SelectionResult) -> None:
    assert result.frame_indices == [result.candidate_indices[p] for p in result.selected_positions]
    assert result.timestamps == [result.candidate_timestamps[p] for p in result.selected_positions]
    assert result.num_candidates == len(result.candidate_indices) == len(result.candidate_timestamps)
    assert result.selected_positions == sorted(result.selected_positions)


def test_every_producer_keeps_the_relation(tiny_agent, video: Path) -> None:
    scored = FrameSelector(tiny_agent, cache=False, decoder="pyav").select(video, "What moves?", num_frames=3)
    uniform = uniform_selection(video, num_frames=3, decoder="pyav", question="What moves?")
    on_grid = given_selection(video, [80, 20], decoder="pyav", strategy="topk", scorer="tspo")
    off_grid = given_selection(video, [3, 61, 17], decoder="pyav", question="q", agent_fingerprint="a",
                               encoder_fingerprint="c")
    for result in (scored, uniform, on_grid, off_grid):
        _check_relation(result)
    with open_video(video, "pyav") as reader:
        grid = candidate_grid(reader.metadata).tolist()
        times = [round(float(t), 6) for t in reader.frame_times([3, 17, 61])]
    assert scored.candidate_indices == grid == uniform.candidate_indices == on_grid.candidate_indices
    assert uniform.question == "What moves?" and uniform.scores == [] and uniform.scorer == "uniform"
    assert on_grid.selected_positions == [1, 4] and on_grid.frame_indices == [20, 80] and on_grid.scores == []
    # off the grid: the given frames are the candidates, every one chosen, no scores
    assert off_grid.candidate_indices == off_grid.frame_indices == [3, 17, 61]
    assert off_grid.selected_positions == [0, 1, 2] and off_grid.scores == [] and off_grid.timestamps == times
    assert (off_grid.strategy, off_grid.scorer, off_grid.decoder) == ("index", "index", "pyav")


def test_index_record_needs_only_the_result(video: Path) -> None:
    off_grid = given_selection(video, [3, 17, 61], decoder="pyav", strategy="topk", scorer="tspo",
                               agent_fingerprint="a", encoder_fingerprint="c")
    record = IndexRecord.from_selection(off_grid, "synthetic", "q1", "result_clip.mp4", num_frames=4)
    assert record.frame_indices == [3, 17, 61] and record.timestamps == off_grid.timestamps
    assert record.candidate_stride == 20  # the video's 1 fps grid, not the spacing of the given frames
    assert (record.n_frames, record.avg_fps, record.flags) == (120, 20.0, ["fewer-frames"])
    assert (record.agent_fingerprint, record.clip_fingerprint) == ("a", "c")


def test_given_frames_outside_the_video_name_the_item(video: Path) -> None:
    with pytest.raises(VideoError, match=r"question q9: indexed frames \[500\] outside 0..119"):
        given_selection(video, [10, 500], decoder="pyav", item="question q9: indexed")


def test_repeated_index_frames_are_kept(video: Path) -> None:
    """An index row may repeat a frame (as before, it is decoded twice); on and off the grid."""
    on_grid = given_selection(video, [40, 20, 40], decoder="pyav")
    off_grid = given_selection(video, [7, 7], decoder="pyav")
    assert on_grid.frame_indices == [20, 40, 40] and on_grid.selected_positions == [1, 2, 2]
    assert off_grid.frame_indices == off_grid.candidate_indices == [7, 7] and off_grid.selected_positions == [0, 1]
    for result in (on_grid, off_grid):
        _check_relation(result)
