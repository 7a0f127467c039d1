"""VLMEvalKit TSVs: byte-equal to what VLMEvalKit's own recipe builds (pandas, written here from
reading its dataset classes), and to the md5 VLMEvalKit checks for the real files."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.benchmarks import get_benchmark
from tspo_eval.benchmarks.vlmevalkit_tsv import (
    MLVU_PREFIXES,
    build_vlmevalkit_tsv,
    format_tsv,
)

# The md5 VLMEvalKit's LongVideoBench / VideoMME classes compare their generated TSV against.
VLMEVALKIT_MD5 = {"longvideobench": "82905eae3a5ae7383c5a8ee9655e1ab9", "videomme": "85bdd91f9b29a99354c23b97ab7c113c"}


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def to_tsv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, sep="\t", index=False)
    return buffer.getvalue()


def recipe_longvideobench(path: Path) -> str:
    frame = pd.read_json(path)
    frame = frame.assign(index=range(len(frame)))
    frame["video"] = frame["video_id"]
    frame["video_path"] = frame["video_path"].apply(lambda x: f"./videos/{x}")
    return to_tsv(frame)


def recipe_videomme(path: Path) -> str:
    frame = pd.DataFrame(json.loads(path.read_text()))       # the parquet rows, as JSON
    frame = frame.assign(index=range(len(frame)))
    frame["video"] = frame["videoID"]
    frame["video_path"] = frame["videoID"].apply(lambda x: f"./video/{x}.mp4")
    frame["subtitle_path"] = frame["videoID"].apply(lambda x: f"./subtitle/{x}.srt")
    frame["candidates"] = frame["options"].apply(list)
    return to_tsv(frame[["index", "video", "video_path", "duration", "domain", "candidates", "sub_category",
                         "task_type", "subtitle_path", "question", "answer"]])


def recipe_mlvu(records) -> str:
    rows = [{"task_type": r.categories["task_type"][0], "prefix": MLVU_PREFIXES[r.categories["task_type"][0]],
             "duration": r.duration, "video": r.video, "question": r.question,
             "answer": r.options[r.answer_index], "candidates": r.options} for r in records]
    frame = pd.DataFrame(rows)
    frame = frame.assign(index=range(len(frame)))
    frame["question_id"] = [r.question_id for r in records]
    return to_tsv(frame)


@pytest.mark.parametrize("name,file,recipe", [("longvideobench", "lvb_val.json", recipe_longvideobench),
                                              ("videomme", "videomme.json", recipe_videomme)])
def test_real_tsv_byte_identical(shared_data, name, file, recipe):
    path = shared_data / "annotations" / file
    ours = build_vlmevalkit_tsv(name, path)
    assert ours == recipe(path)
    assert md5(ours) == VLMEVALKIT_MD5[name]


def test_real_mlvu_and_lvbench_tsv(shared_data):
    path = shared_data / "annotations" / "mlvu.json"
    records = get_benchmark("mlvu").load(path)
    ours = build_vlmevalkit_tsv("mlvu", path)
    assert ours == recipe_mlvu(records)
    table = pd.read_csv(io.StringIO(ours), sep="\t")
    assert list(table.columns) == ["task_type", "prefix", "duration", "video", "question", "answer", "candidates",
                                   "index", "question_id"]
    assert table["index"].tolist() == list(range(len(records)))
    lv_path = shared_data / "annotations" / "video_info.meta.jsonl"
    lv = pd.read_csv(io.StringIO(build_vlmevalkit_tsv("lvbench", lv_path)), sep="\t", dtype={"question_id": str})
    assert len(lv) == 1549 and lv["index"].tolist() == list(range(1549))
    assert lv["question_id"].is_unique and set(lv["answer"]) == set("ABCD")


def test_fixture_with_awkward_cells_matches_pandas(tmp_path):
    rows = [
        {"video_id": "v1", "question": 'Says "hi"\tthen\nleaves?', "candidates": ["it's", 'say "x"', "c"],
         "correct_choice": 0, "id": "v1_0", "video_path": "v1.mp4", "duration_group": 15, "duration": 10,
         "question_category": "S2E", "position": [1, 2]},
        {"video_id": "v2", "question": "Plain?", "candidates": ["a", "b"], "correct_choice": 1, "id": "v2_0",
         "video_path": "v2.mp4", "duration": 12.25, "question_category": "TOS", "position": [],
         "extra_field": "only here"},
    ]
    path = tmp_path / "lvb_val.json"
    path.write_text(json.dumps(rows))
    ours = build_vlmevalkit_tsv("longvideobench", path)
    assert ours == recipe_longvideobench(path)
    assert build_vlmevalkit_tsv("longvideobench", path) == ours          # deterministic bytes
    assert "\t15.0\t" in ours and "\t10.0\t" in ours                     # a gap turns the int column to floats


def test_format_tsv_cell_rules():
    text = format_tsv(["a", "b", "c", "d"], [{"a": 1, "b": 1.5, "c": [1, "x"], "d": True}, {"a": 2, "b": 2, "d": None}])
    assert text == "a\tb\tc\td\n1\t1.5\t[1, 'x']\tTrue\n2\t2.0\t\t\n"
    frame = pd.DataFrame([{"a": 1, "b": 1.5, "c": [1, "x"], "d": True}, {"a": 2, "b": 2, "d": None}])
    assert to_tsv(frame) == text
