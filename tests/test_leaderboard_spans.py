"""Selection-only board: chosen frames against ground-truth time spans, on hand-built cases."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.errors import InputError
from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
from tspo_eval.leaderboard.span_hits import (
    build_span_board,
    frame_hits,
    summarize,
    uniform_times,
)
from tspo_eval.leaderboard.span_tables import write_span_outputs


def _record(qid: str, frames: list[int], benchmark: str = "synthetic", n_frames: int = 200, fps: float = 10.0,
            timestamps: bool = True) -> IndexRecord:
    return IndexRecord(benchmark=benchmark, question_id=qid, video="v.mp4", n_frames=n_frames, avg_fps=fps,
                       candidate_stride=max(1, round(fps)) if fps else 0, frame_indices=frames,
                       timestamps=[f / fps for f in frames] if timestamps and fps else [], strategy="topk",
                       scorer="tspo", agent_fingerprint="a", clip_fingerprint="c")


def _annotation(path: Path, n: int = 6) -> Path:
    """Synthetic-benchmark annotation: question s<i> has the span [2 + i, 4 + i] seconds."""
    rows = [{"question_id": f"s{i}", "video": "v.mp4", "question": f"needle {i}?", "options": ["a", "b", "c", "d"],
             "answer": "A", "duration": 20.0, "task_type": "colour", "time_spans": [[2.0 + i, 4.0 + i]]}
            for i in range(n)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_frame_hits_hand_case() -> None:
    spans = [(4.0, 6.0), (8.0, 10.0), (20.0, 30.0)]
    assert frame_hits([1.0, 5.0, 9.0, 12.0], spans) == (True, 2, 2)
    assert frame_hits([6.0, 4.0, 5.0], spans) == (True, 3, 1)          # bounds are inclusive
    assert frame_hits([1.0, 12.0, 31.0], spans) == (False, 0, 0)
    assert frame_hits([3.5, 30.4], spans, tolerance=0.5) == (True, 2, 2)
    assert frame_hits([], spans) == (False, 0, 0) and frame_hits([5.0], []) == (False, 0, 0)


def test_summary_pools_frames_and_spans() -> None:
    times = {"a": [1.0, 5.0], "b": [0.0, 1.0, 2.0], "c": [9.0], "no_span": [1.0]}
    spans = {"a": [(4.0, 6.0), (7.0, 8.0)], "b": [(10.0, 11.0)], "c": [(8.0, 10.0)]}
    summary = summarize(times, spans)
    assert summary.question_ids == ["a", "b", "c"]
    assert summary.hits.tolist() == [True, False, True]
    assert summary.hit_rate == pytest.approx(2 / 3)
    assert summary.frame_fraction == pytest.approx(2 / 6)        # 5.0 and 9.0 of 6 frames
    assert summary.span_recall == pytest.approx(2 / 4)           # (4,6) and (8,10) of 4 spans


def test_uniform_reference_uses_the_candidate_grid() -> None:
    # 200 frames at 10 fps -> 20 candidates at 0..19 s; 4 frames -> positions round(linspace(0, 19, 4))
    assert uniform_times(_record("x", [0, 10, 20, 30])) == [0.0, 6.0, 13.0, 19.0]
    assert uniform_times(_record("x", [0, 10], n_frames=0)) is None


@pytest.fixture()
def synthetic_case(tmp_path: Path):
    from tspo_eval.benchmarks import get_benchmark

    records = get_benchmark("synthetic").load(_annotation(tmp_path / "ann.json"))
    # selector: one frame inside each span (3 + i s) plus three frames at 15-17 s (outside every span)
    index = [_record(f"s{i}", [(3 + i) * 10, 150, 160, 170]) for i in range(4)]
    index.append(_record("s4", [70, 150, 160, 170], n_frames=0, fps=0.0))   # frame times unknown
    path = write_index(tmp_path / "tspo_frames_tspo_synthetic.jsonl", index)
    return records, path


def test_span_board_against_uniform(synthetic_case) -> None:
    records, path = synthetic_case
    board = build_span_board([f"tspo={path}"], {"synthetic": records}, n_boot=300, seed=1)
    (row,) = board.rows
    assert (row.selector, row.n, row.missing, row.no_timing) == ("tspo", 4, 1, 1)   # s5 absent, s4 untimed
    assert row.hit_rate == 100.0 and row.frame_fraction == pytest.approx(25.0) and row.span_recall == 100.0
    # uniform picks 0, 6, 13, 19 s: inside [4, 6] (s2) and [5, 7] (s3) only
    assert row.uniform_n == 4 and row.uniform_hit_rate == pytest.approx(50.0)
    assert row.uniform_frame_fraction == pytest.approx(100 * 2 / 16)
    assert (row.mcnemar_b, row.mcnemar_c) == (2, 0) and row.p_value == pytest.approx(0.5)
    assert row.delta == pytest.approx(50.0)
    hits, ref = np.ones(4), np.array([0.0, 0.0, 1.0, 1.0])
    idx = np.random.default_rng(1).integers(0, 4, size=(300, 4))
    low, high = np.percentile(hits[idx].mean(1) - ref[idx].mean(1), [2.5, 97.5])
    assert (row.delta_low, row.delta_high) == pytest.approx((100 * low, 100 * high))
    assert any("without frame times" in note for note in board.notes)


def test_span_outputs_agree(synthetic_case, tmp_path: Path) -> None:
    records, path = synthetic_case
    board = build_span_board([str(path.parent)], {"synthetic": records}, n_boot=100, seed=0)
    paths = write_span_outputs(board, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    (row,) = data["rows"]
    assert row["selector"] == "tspo-topk-4"          # default label: scorer-strategy-K
    md = paths["markdown"].read_text()
    assert "| tspo-topk-4 | 4 | 1 | 4.0 | 100.0 [100.0, 100.0] | 25.0 | 100.0 | 50.0 / 12.5 / 50.0 |" in md
    assert paths["csv"].read_text().splitlines()[1].startswith("synthetic,tspo-topk-4,")


def test_span_board_needs_annotations_with_spans(synthetic_case) -> None:
    records, path = synthetic_case
    with pytest.raises(InputError, match="--annotations"):
        build_span_board([str(path)], {})
    with pytest.raises(InputError, match="no index records matched"):
        build_span_board([str(path)], {"lvbench": records})


def test_lvbench_time_reference_with_annotation_fps(shared_data: Path, tmp_path: Path) -> None:
    """Real LVBench annotation; records without video metadata use the annotation's fps."""
    from tspo_eval.benchmarks import get_benchmark

    records = get_benchmark("lvbench").load(shared_data / "annotations" / "video_info.meta.jsonl")
    chosen = [r for r in records if r.time_spans and r.extra.get("fps")][:6]
    index = []
    for i, rec in enumerate(chosen):
        fps = float(rec.extra["fps"])
        start, end = rec.time_spans[0]
        inside = int(round((start + end) / 2 * fps))
        frames = [inside] if i % 2 == 0 else [int((end + 30) * fps)]      # every other question misses
        index.append(_record(rec.question_id, frames, benchmark="lvbench", n_frames=0, fps=0.0))
    path = write_index(tmp_path / "lvb.jsonl", index)
    board = build_span_board([str(path)], {"lvbench": records}, n_boot=100, seed=0)
    (row,) = board.rows
    assert row.n == 6 and row.hit_rate == pytest.approx(50.0) and row.uniform_n == 0
    assert row.missing == sum(1 for r in records if r.time_spans) - 6
