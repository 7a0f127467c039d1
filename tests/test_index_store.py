"""Index files: record round trip, crash-tolerant append, resume, merge order, diff."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import (
    FLAG_SHORT,
    IndexRecord,
    IndexWriter,
    merge_index_files,
    record_sort_key,
    sort_records,
    write_index,
)
from tspo_eval.index_diff import diff_indices, span_frame_fraction


def make_record(qid: str, video: str = "a.mp4", frames=(0, 30, 60), fps: float = 30.0, **kw) -> IndexRecord:
    values = {
        "benchmark": "synthetic", "question_id": qid, "video": video, "n_frames": 300, "avg_fps": fps,
        "candidate_stride": 30, "frame_indices": list(frames), "timestamps": [round(f / fps, 6) for f in frames],
        "strategy": "topk", "scorer": "tspo", "agent_fingerprint": "agentfp", "clip_fingerprint": "clipfp",
    }
    values.update(kw)
    return IndexRecord(**values)


def test_record_json_round_trip_and_field_order():
    record = make_record("Q1", flags=[FLAG_SHORT], extra={"note": "é"})
    line = record.to_json()
    assert "\n" not in line and "é" in line  # one line, UTF-8 kept
    data = json.loads(line)
    assert list(data)[:12] == ["benchmark", "question_id", "video", "n_frames", "avg_fps", "candidate_stride",
                               "frame_indices", "timestamps", "strategy", "scorer", "agent_fingerprint",
                               "clip_fingerprint"]
    assert IndexRecord.from_dict(data) == record
    assert "flags" not in make_record("Q2").to_dict()  # empty optional fields are left out


def test_from_dict_names_the_problem():
    data = make_record("Q7").to_dict()
    del data["frame_indices"]
    with pytest.raises(AnnotationError, match="Q7.*frame_indices"):
        IndexRecord.from_dict(data, where="f.jsonl:3")


def test_from_selection_uses_result_fields():
    from tspo_eval.selection_result import SelectionResult
    from tspo_eval.video import VideoMetadata

    meta = VideoMetadata(path="v.mp4", n_frames=20, avg_fps=5.0, duration=4.0, width=8, height=8, decoder="pyav")
    result = SelectionResult.from_candidates(
        video="/data/v.mp4", question="q", metadata=meta, candidates=[0, 5, 10, 15],
        candidate_times=[0.0, 1.0, 2.0, 3.0], positions=[1, 3], scores=[0.1, 0.9, 0.2, 0.8], strategy="bin-max", scorer="clip", fps=1.0,
        agent_fingerprint="a", encoder_fingerprint="c")
    record = IndexRecord.from_selection(result, "lvbench", "42", "v.mp4", num_frames=4)
    assert record.candidate_stride == 5 and record.timestamps == [1.0, 3.0]
    assert record.flags == [FLAG_SHORT] and record.question_id == "42"
    assert record.frame_indices == [5, 15] and record.n_frames == 20 and record.avg_fps == 5.0
    assert record.clip_fingerprint == "c" == record.to_dict()["clip_fingerprint"]  # the encoder fingerprint, old name


def test_writer_skips_done_ids_and_cuts_torn_line(tmp_path: Path):
    path = tmp_path / "idx.jsonl"
    with IndexWriter(path) as writer:
        assert writer.write(make_record("Q1"))
        assert not writer.write(make_record("Q1", frames=(1,)))  # same id: not written again
    good = path.read_bytes()
    with path.open("ab") as handle:  # a crash mid-line
        handle.write(make_record("Q2").to_json().encode()[:40])
    assert read_index(path).keys() == {"Q1"}  # reader tolerates the torn tail
    with IndexWriter(path) as writer:
        assert writer.done_ids() == {"Q1"}
        assert path.read_bytes() == good  # torn tail cut off
        writer.write(make_record("Q2"))
    assert list(read_index(path)) == ["Q1", "Q2"]


def test_writer_keeps_a_complete_last_line_without_newline(tmp_path: Path):
    path = tmp_path / "idx.jsonl"
    path.write_text(make_record("Q1").to_json())  # hand-made file, no final newline
    with IndexWriter(path) as writer:
        writer.write(make_record("Q2"))
    assert list(read_index(path)) == ["Q1", "Q2"]


def test_corrupt_middle_line_is_an_error(tmp_path: Path):
    path = tmp_path / "idx.jsonl"
    path.write_text(make_record("Q1").to_json() + "\n{oops\n" + make_record("Q2").to_json() + "\n")
    with pytest.raises(AnnotationError, match=r"idx.jsonl:2"):
        read_index(path)
    with pytest.raises(InputError, match="not found"):
        read_index(tmp_path / "missing.jsonl")


def test_sigkill_during_writes_loses_at_most_one_line(tmp_path: Path):
    """A writer process killed at a random moment leaves a file that reopens cleanly."""
    path = tmp_path / "idx.jsonl"
    script = (
        "import sys\n"
        "from tspo_eval.frame_index_cache.index_store import IndexRecord, IndexWriter\n"
        "w = IndexWriter(sys.argv[1])\n"
        "i = 0\n"
        "while True:\n"
        "    w.write(IndexRecord('s', f'Q{i}', 'v.mp4', 10, 1.0, 1, list(range(64)), [0.0]*64, 'topk', 'tspo', 'a', 'c'))\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        for _ in range(600):  # wait for some lines
            if path.exists() and path.stat().st_size > 20_000:
                break
            proc.poll()
            assert proc.returncode is None, "writer died early"
            import time

            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    with IndexWriter(path) as writer:
        done = writer.done_ids()
    assert len(done) > 10
    assert done == {f"Q{i}" for i in range(len(done))}  # a gap-free prefix
    assert path.read_bytes().endswith(b"\n")


def test_sort_and_merge_are_canonical(tmp_path: Path):
    records = [make_record("Q10", "b.mp4"), make_record("Q2", "b.mp4"), make_record("Q1", "a.mp4")]
    assert [r.question_id for r in sort_records(records)] == ["Q1", "Q2", "Q10"]  # natural order within video
    part1, part2 = tmp_path / "p1.jsonl", tmp_path / "p2.jsonl"
    write_index(part1, [records[0]])
    write_index(part2, [records[2], records[1]])
    out = tmp_path / "merged.jsonl"
    assert merge_index_files([part2, part1], out) == 3
    merged = list(read_index(out).values())
    assert [record_sort_key(r) for r in merged] == sorted(record_sort_key(r) for r in merged)
    again = tmp_path / "again.jsonl"
    merge_index_files([part1, part2], again)
    assert again.read_bytes() == out.read_bytes()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # no temporary files left


def test_diff_overlap_jaccard_and_span_hits():
    a = {"Q1": make_record("Q1", frames=(0, 30, 60, 90)), "Q2": make_record("Q2", frames=(0, 30)),
         "Q3": make_record("Q3")}
    b = {"Q1": make_record("Q1", frames=(30, 60, 120)), "Q2": make_record("Q2", frames=(0, 30), avg_fps=0.0,
                                                                            timestamps=[])}
    spans = {"Q1": [(0.9, 2.1)], "Q2": [(5.0, 6.0)]}
    result = diff_indices(a, b, spans)
    q1, q2 = result.questions
    assert (q1.overlap, q1.jaccard) == (2, pytest.approx(2 / 5))
    assert q1.span_frame_fraction_a == pytest.approx(2 / 4) and q1.span_frame_fraction_b == pytest.approx(2 / 3)
    assert q2.jaccard == 1.0 and q2.span_frame_fraction_b == 0.0  # fps borrowed from the other side
    assert result.only_a == ["Q3"] and result.only_b == []
    assert result.mean_jaccard == pytest.approx((0.4 + 1.0) / 2)
    assert result.span_frame_fraction("a") == pytest.approx(2 / 6)
    assert "mean Jaccard: 0.7000" in result.summary()
    assert span_frame_fraction([30], 0.0, [(0, 1)]) is None and span_frame_fraction([30], 30.0, []) is None
