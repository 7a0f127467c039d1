"""``tspo-eval index diff --per-question``: fields named for what they hold, an atomic, readable file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tspo_eval.cli import main
from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index


def _record(qid: str, frames: list[int], fps: float = 10.0) -> IndexRecord:
    return IndexRecord(
        benchmark="synthetic", question_id=qid, video="synth_000.mp4", n_frames=200, avg_fps=fps,
        candidate_stride=10, frame_indices=frames, timestamps=[f / fps for f in frames], strategy="topk",
        scorer="tspo", agent_fingerprint="a", clip_fingerprint="c")


def test_per_question_rows_hold_span_frame_fractions(tmp_path: Path, capsys) -> None:
    annotations = tmp_path / "synthetic.json"
    annotations.write_text(json.dumps([
        {"question_id": "q0", "video": "synth_000.mp4", "question": "What colour?", "options": ["red", "blue"],
         "answer": "A", "duration": 20.0, "task_type": "needle", "time_spans": [[5.0, 8.0]]},
        {"question_id": "q1", "video": "synth_000.mp4", "question": "Which shape?", "options": ["a", "b"],
         "answer": "B", "duration": 20.0, "task_type": "needle", "time_spans": []},
    ]))
    # q0: A has 3 of 4 frames in [5 s, 8 s]; B has 1 of 4
    write_index(tmp_path / "a.jsonl", [_record("q0", [50, 60, 70, 150]), _record("q1", [0, 10])])
    write_index(tmp_path / "b.jsonl", [_record("q0", [0, 10, 60, 150]), _record("q1", [0, 20])])
    per_question = tmp_path / "rows.jsonl"
    per_question.write_text("stale content\n")
    old_umask = os.umask(0o022)
    try:
        assert main(["index", "diff", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--json",
                     "--benchmark", "synthetic", "--annotations", str(annotations),
                     "--per-question", str(per_question)]) == 0
    finally:
        os.umask(old_umask)
    summary = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in per_question.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == ["q0", "q1"]
    assert not any(key.startswith("span_hit") for row in rows for key in row)
    assert not any(key.startswith("span_hit") for key in summary)
    assert rows[0]["span_frame_fraction_a"] == pytest.approx(0.75)
    assert rows[0]["span_frame_fraction_b"] == pytest.approx(0.25)
    assert rows[1]["span_frame_fraction_a"] is None          # no spans for q1: no fraction
    assert summary["span_frame_fraction_a"] == pytest.approx(0.75)
    assert summary["questions_with_spans"] == 1
    assert (per_question.stat().st_mode & 0o777) == 0o644    # written through atomic_files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "rows.jsonl", "synthetic.json"]
