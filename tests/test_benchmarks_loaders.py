"""Benchmark loaders on the real annotation files and on small hand-written fixtures."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tspo_eval.benchmarks import BENCHMARK_NAMES, QuestionRecord, get_benchmark
from tspo_eval.benchmarks.lvbench import parse_time_reference, split_inline_options
from tspo_eval.errors import AnnotationError, InputError

ANN = "annotations"

LVB_ROWS = [
    {"video_id": "vidA", "question": "What is shown?", "candidates": ["cat", "dog", "bird"], "correct_choice": 2,
     "question_category": "S2E", "id": "vidA_0", "video_path": "vidA.mp4", "duration_group": 15, "duration": 12.5},
    {"video_id": "vidB", "question": "Who speaks?", "candidates": ["a", "b", "c", "d", "e"], "correct_choice": 0,
     "question_category": "TOS", "id": "vidB_0", "video_path": "vidB.mp4", "duration_group": 600, "duration": 300},
]
VMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "History", "videoID": "yt1",
     "question_id": "001-1", "task_type": "Counting Problem", "question": "How many?",
     "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": "C"},
]
MLVU_ROWS = [
    {"video_name": "needle_1.mp4", "duration": 400.0, "question": "What?\n(A) x\n(B) y\n", "candidates": ["x", "y"],
     "answer": "B", "task_type": "needle", "question_id": "Q0"},
]
LVBENCH_LINES = [
    {"key": "k1", "type": "tv", "video_info": {"duration_minutes": 2.0, "fps": 25.0},
     "qa": [{"uid": "1", "question": "Which?\n(A) p\n(B) q\n(C) r\n(D) s", "answer": "D",
             "question_type": ["entity recognition", "reasoning"], "time_reference": "01:05-01:10"},
            {"uid": "2", "question": "When?\n(A) p\n(B) q\n(C) r\n(D) s", "answer": "a",
             "question_type": ["temporal grounding"], "time_reference": "None-None"}]},
]


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- real files ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,file,count", [
    ("longvideobench", "lvb_val.json", 1337), ("videomme", "videomme.json", 2700),
    ("mlvu", "mlvu.json", 2174), ("lvbench", "video_info.meta.jsonl", 1549)])
def test_real_files_load(shared_data, name, file, count):
    records = get_benchmark(name).load(shared_data / ANN / file)
    assert len(records) == count
    assert len({r.question_id for r in records}) == count
    for r in records:
        assert r.benchmark == name and r.question and r.video
        assert 2 <= len(r.options) <= 5 and r.answer in "ABCDE"[: len(r.options)]
        assert set(r.categories) == set(get_benchmark(name).breakdowns)
        assert all(r.categories[b] for b in r.categories)


def test_real_longvideobench_fields(shared_data):
    raw = json.loads((shared_data / ANN / "lvb_val.json").read_text())
    records = get_benchmark("longvideobench").load(shared_data / ANN / "lvb_val.json")
    for row, rec in zip(raw, records):
        assert rec.question_id == row["id"]
        assert rec.options[rec.answer_index] == row["candidates"][row["correct_choice"]]
        assert rec.categories["duration_group"] == [str(row["duration_group"])]
    assert {g for r in records for g in r.categories["duration_group"]} == {"15", "60", "600", "3600"}
    assert len({c for r in records for c in r.categories["question_category"]}) == 17


def test_real_videomme_and_mlvu_fields(shared_data):
    vm = get_benchmark("videomme").load(shared_data / ANN / "videomme.json")
    raw = json.loads((shared_data / ANN / "videomme.json").read_text())
    assert all(f"{r.answer}. {r.options[r.answer_index]}" == row["options"][r.answer_index] for r, row in zip(vm, raw))
    assert {d for r in vm for d in r.categories["duration"]} == {"short", "medium", "long"}
    ml = get_benchmark("mlvu").load(shared_data / ANN / "mlvu.json")
    assert {t for r in ml for t in r.categories["task_type"]} == {
        "plotQA", "needle", "ego", "count", "order", "anomaly_reco", "topic_reasoning"}
    assert all("(A)" not in r.question for r in ml)


def test_real_lvbench_types_and_spans(shared_data):
    records = get_benchmark("lvbench").load(shared_data / ANN / "video_info.meta.jsonl")
    types = Counter(t for r in records for t in r.categories["question_type"])
    assert set(types) == {"ER", "EU", "KIR", "TG", "Rea", "Sum"}
    assert sum(types.values()) > len(records)          # multi-type questions exist
    assert all(len(r.options) == 4 for r in records)
    with_span = [r for r in records if r.time_spans]
    assert len(with_span) >= len(records) - 2          # two rows have "None" bounds
    beyond = 0
    for r in with_span:
        (start, end), = r.time_spans
        assert 0 <= start <= end
        beyond += end > r.duration + 1
    assert beyond <= 2                                  # a typo or two in the release ("116:50-108:00")
    first = records[0]
    assert (first.question_id, first.time_spans, first.answer) == ("55", [(15.0, 19.0)], "D")


# ---- hand-written fixtures -------------------------------------------------------------------
def test_longvideobench_fixture(tmp_path):
    recs = get_benchmark("longvideobench").load(write_json(tmp_path / "lvb.json", LVB_ROWS))
    a, b = recs
    assert (a.question_id, a.video, a.answer, a.options, a.duration) == ("vidA_0", "vidA.mp4", "C",
                                                                         ["cat", "dog", "bird"], 12.5)
    assert b.categories == {"duration_group": ["600"], "question_category": ["TOS"]}
    assert get_benchmark(a.benchmark).format_options(a) == "What is shown?\nA. cat\nB. dog\nC. bird"
    assert get_benchmark("longvideobench").format_prompt(a).endswith(
        "C. bird\nAnswer with the option's letter from the given choices directly.\n")


def test_videomme_mlvu_lvbench_fixtures(tmp_path):
    vm, = get_benchmark("videomme").load(write_json(tmp_path / "v.json", VMME_ROWS))
    assert (vm.options, vm.answer, vm.video, vm.duration) == (["One.", "Two.", "Three.", "Four."], "C", "yt1.mp4", None)
    assert vm.categories == {"duration": ["short"], "domain": ["Knowledge"], "task_type": ["Counting Problem"]}
    assert get_benchmark("videomme").default_strategy == "bin-max"
    ml, = get_benchmark("mlvu").load(write_json(tmp_path / "m.json", MLVU_ROWS))
    assert (ml.question, ml.options, ml.answer) == ("What?", ["x", "y"], "B")
    assert get_benchmark(ml.benchmark).format_options(ml) == "What?\n(A) x\n(B) y"
    one, two = get_benchmark("lvbench").load(write_jsonl(tmp_path / "l.jsonl", LVBENCH_LINES))
    assert one.categories == {"question_type": ["ER", "Rea"]} and one.time_spans == [(65.0, 70.0)]
    assert (one.question, one.options, one.duration, one.video) == ("Which?", ["p", "q", "r", "s"], 120.0, "k1.mp4")
    assert (two.answer, two.time_spans) == ("A", [])


def test_record_round_trip(tmp_path):
    rec, = get_benchmark("lvbench").load(write_jsonl(tmp_path / "l.jsonl", LVBENCH_LINES[:1]))[:1]
    again = QuestionRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert again == rec


def test_time_reference_parsing():
    assert parse_time_reference("00:15-00:19") == [(15.0, 19.0)]
    assert parse_time_reference("1:02:03-1:02:04") == [(3723.0, 3724.0)]
    assert parse_time_reference("33:52-33:46") == [(2026.0, 2032.0)]      # reversed in the release
    assert parse_time_reference("08:17-None") == [] and parse_time_reference(None) == []
    with pytest.raises(AnnotationError):
        parse_time_reference("ab:cd-00:10")
    assert split_inline_options("Q?\n(A) one\n(B) two\nlines on") == ("Q?", ["one", "two\nlines on"])


@pytest.mark.parametrize("name,rows,needle", [
    ("longvideobench", [dict(LVB_ROWS[0], correct_choice=3)], "vidA_0"),
    ("longvideobench", [{k: v for k, v in LVB_ROWS[0].items() if k != "candidates"}], "vidA_0"),
    ("videomme", [dict(VMME_ROWS[0], options=["A. x", "C. y"])], "001-1"),
    ("videomme", [dict(VMME_ROWS[0], answer="Z")], "001-1"),
    ("mlvu", [dict(MLVU_ROWS[0], answer="C")], "Q0"),
    ("mlvu", [{k: v for k, v in MLVU_ROWS[0].items() if k != "question_id"}], "row 0"),
])
def test_malformed_rows_are_named(tmp_path, name, rows, needle):
    with pytest.raises(AnnotationError, match=needle):
        get_benchmark(name).load(write_json(tmp_path / "bad.json", rows))


def test_lvbench_malformed_line_and_uid(tmp_path):
    bad = json.loads(json.dumps(LVBENCH_LINES))
    bad[0]["qa"][1]["question_type"] = []
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps(LVBENCH_LINES[0]) + "\n" + json.dumps(bad[0]).replace('"k1"', '"k2"')
                    .replace('"uid": "1"', '"uid": "9"').replace('"uid": "2"', '"uid": "8"') + "\n")
    with pytest.raises(AnnotationError, match=r"line 2: video k2, question 8: question_type"):
        get_benchmark("lvbench").load(path)
    path.write_text(json.dumps(LVBENCH_LINES[0]) + "\n{not json\n")
    with pytest.raises(AnnotationError, match="line 2: invalid JSON"):
        get_benchmark("lvbench").load(path)


def test_duplicates_empty_missing_and_unknown(tmp_path):
    with pytest.raises(AnnotationError, match="duplicate question ids: vidA_0"):
        get_benchmark("longvideobench").load(write_json(tmp_path / "d.json", [LVB_ROWS[0], LVB_ROWS[0]]))
    (tmp_path / "e.json").write_text("")
    with pytest.raises(AnnotationError, match="empty"):
        get_benchmark("mlvu").load(tmp_path / "e.json")
    with pytest.raises(AnnotationError, match="no questions"):
        get_benchmark("mlvu").load(write_json(tmp_path / "e2.json", []))
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(AnnotationError, match="empty"):
        get_benchmark("lvbench").load(tmp_path / "e.jsonl")
    with pytest.raises(AnnotationError, match="not found"):
        get_benchmark("videomme").load(tmp_path / "absent.json")
    with pytest.raises(InputError, match="unknown benchmark 'egoschema'"):
        get_benchmark("egoschema")
    assert get_benchmark("tspo_videomme") is get_benchmark("VideoMME")
    assert tuple(BENCHMARK_NAMES) == ("longvideobench", "mlvu", "videomme", "lvbench", "synthetic")


def test_resolve_video_layouts(tmp_path):
    lvb = get_benchmark("longvideobench")
    rec = lvb.load(write_json(tmp_path / "lvb.json", LVB_ROWS))[0]
    root = tmp_path / "root"
    assert lvb.resolve_video(rec, root) == root / "videos" / "vidA.mp4"      # missing: usual layout path
    (root).mkdir()
    (root / "vidA.mp4").write_bytes(b"x")
    assert lvb.resolve_video(rec, root) == root / "vidA.mp4"                 # flat layout accepted
    (root / "videos").mkdir()
    (root / "videos" / "vidA.mp4").write_bytes(b"x")
    assert lvb.resolve_video(rec, root) == root / "videos" / "vidA.mp4"      # usual layout first
    vm = get_benchmark("videomme")
    vrec = vm.load(write_json(tmp_path / "v.json", VMME_ROWS))[0]
    assert vm.resolve_video(vrec, root) == root / "data" / "yt1.mp4"
    (root / "video").mkdir()
    (root / "video" / "yt1.mkv").write_bytes(b"x")
    assert vm.resolve_video(vrec, root) == root / "video" / "yt1.mkv"        # VLMEvalKit folder, .mkv
    lv = get_benchmark("lvbench")
    lrec = lv.load(write_jsonl(tmp_path / "l.jsonl", LVBENCH_LINES))[0]
    assert lv.resolve_video(lrec, root) == root / "k1.mp4"


def test_synthetic_benchmark_builder(tmp_path):
    import numpy as np

    from tspo_eval.testing.synthetic_benchmark import COLORS, build_synthetic_benchmark

    ann, videos = build_synthetic_benchmark(tmp_path / "s", n_videos=2, questions_per_video=3, seconds=12, fps=5.0)
    bench = get_benchmark("synthetic")
    records = bench.load(ann)
    assert len(records) == 6 and {r.categories["task_type"][0] for r in records} == {"needle_color", "needle_position"}
    import av

    for rec in records:
        path = bench.resolve_video(rec, videos)
        assert path.is_file() and len(rec.time_spans) == 1 and rec.duration == pytest.approx(12.0)
        (start, end), = rec.time_spans
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 60
        middle = frames[int((start + end) / 2 * 5)]
        assert np.abs(middle.astype(int) - np.array(COLORS[rec.extra["needle_color"]])).mean() < 30
        outside = frames[max(0, int(start * 5) - 1)]
        assert outside.mean() < 80                                           # dim background before the needle
        if rec.categories["task_type"] == ["needle_color"]:
            assert rec.options[rec.answer_index] == rec.extra["needle_color"]


def test_jsonl_with_unicode_line_separator_inside_strings(tmp_path):
    line = json.loads(json.dumps(LVBENCH_LINES[0]))
    line["qa"][0]["question"] = "Which\u2028one?\n(A) p\n(B) q\n(C) r\n(D) s"
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    first = get_benchmark("lvbench").load(path)[0]
    assert first.question == "Which\u2028one?"


# ---- a file of another benchmark (or another layout) says what was expected ----------------------
SYNTHETIC_ROWS = [
    {"question_id": "s0", "video": "synth_000.mp4", "question": "What colour?", "options": ["red", "blue"],
     "answer": "A", "duration": 20.0, "task_type": "needle", "time_spans": [[1.0, 2.0]]},
]
WRONG_FILES = {  # benchmark whose file it is -> (file name, rows, JSON lines?)
    "longvideobench": ("lvb_val.json", LVB_ROWS, False),
    "videomme": ("videomme.json", VMME_ROWS, False),
    "mlvu": ("mlvu.json", MLVU_ROWS, False),
    "lvbench": ("video_info.meta.jsonl", LVBENCH_LINES * 2, True),
    "synthetic": ("synthetic.json", SYNTHETIC_ROWS, False),
}


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
@pytest.mark.parametrize("source", BENCHMARK_NAMES)
def test_wrong_file_names_the_expected_format(tmp_path, name, source):
    file_name, rows, jsonl = WRONG_FILES[source]
    path = tmp_path / file_name
    if jsonl:   # two lines with the same key would also be duplicates: give the second its own ids
        second = json.loads(json.dumps(rows[1]).replace('"k1"', '"k2"').replace('"uid": "1"', '"uid": "3"')
                            .replace('"uid": "2"', '"uid": "4"'))
        write_jsonl(path, [rows[0], second])
    else:
        write_json(path, rows)
    bench = get_benchmark(name)
    if name == source:
        assert bench.load(path)
        return
    with pytest.raises(AnnotationError) as info:
        bench.load(path)
    message = str(info.value)
    assert "invalid JSON" not in message and "\n" not in message
    assert f"expected {name} annotations ({bench.annotation_file})" in message, message
    assert "found" in message and f"looks like {source} annotations ({file_name})" in message, message


def test_single_object_and_json_list_layouts_are_named(tmp_path):
    one_line = write_jsonl(tmp_path / "one.jsonl", LVBENCH_LINES)   # one JSON object: not a list of rows
    with pytest.raises(AnnotationError, match=r"found one JSON object with keys key, type, video_info, qa"):
        get_benchmark("mlvu").load(one_line)
    listed = tmp_path / "list.jsonl"
    listed.write_text(json.dumps(MLVU_ROWS, indent=2))             # a JSON list over many lines
    with pytest.raises(AnnotationError, match=r"JSON lines.*found one JSON list of 1 objects.*looks like mlvu"):
        get_benchmark("lvbench").load(listed)
    listed.write_text(json.dumps(MLVU_ROWS))                       # ... or on one line
    with pytest.raises(AnnotationError, match=r"found one JSON list of 1 objects"):
        get_benchmark("lvbench").load(listed)
