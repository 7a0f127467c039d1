"""TSPO's published ``*_frameIdx.json`` files: import, export (byte-identical round trip), CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tspo_eval.cli import main
from tspo_eval.errors import InputError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import (
    FLAG_IMPORTED,
    FLAG_SHORT,
    write_index,
)
from tspo_eval.frame_index_cache.published import (
    detect_benchmark,
    export_published,
    fill_video_metadata,
    import_published,
)

PUBLISHED = {
    "longvideobench": ("TSPO_LongVideoBench_frameIdx.json", "lvb_val.json", "id"),
    "mlvu": ("TSPO_MLVU_frameIdx.json", "mlvu.json", "question_id"),
    "videomme": ("TSPO_VideoMME_frameIdx.json", "videomme.json", "question_id"),
}


@pytest.mark.parametrize("bench", sorted(PUBLISHED))
def test_published_round_trip(shared_data: Path, tmp_path: Path, bench: str):
    name, annotation, key = PUBLISHED[bench]
    source = shared_data / "published_frame_indices" / name
    rows = json.loads(source.read_text())
    records = import_published(source)
    assert len(records) == len(rows) and records[0].benchmark == bench
    for row, record in zip(rows, records):
        assert record.question_id == str(row[key])
        assert record.frame_indices == [int(v) for v in row["frame_idx"]]
        assert FLAG_IMPORTED in record.flags
        assert (FLAG_SHORT in record.flags) == (len(row["frame_idx"]) < 64)  # short rows kept, flagged

    index = tmp_path / "index.jsonl"
    write_index(index, records)
    back = list(read_index(index).values())  # through our JSONL format
    out = tmp_path / name
    n, missing = export_published(back, out)
    assert n == len(rows) and not missing
    assert out.read_bytes() == source.read_bytes()  # byte-identical round trip
    # the same rows again when joined with the original annotation file instead of the stored rows
    stripped = back
    for r in stripped:
        r.extra = {}
    joined = tmp_path / "joined.json"
    export_published(stripped, joined, annotations=shared_data / "annotations" / annotation)
    assert joined.read_bytes() == source.read_bytes()


def test_read_index_reads_published_json_directly(shared_data: Path):
    source = shared_data / "published_frame_indices" / "TSPO_VideoMME_frameIdx.json"
    index = read_index(source)
    assert len(index) == 2700 and index["001-1"].video == "fFjv93ACGo8.mp4"
    assert index["001-1"].strategy == "bin-max"


def test_short_rows_are_counted(shared_data: Path):
    records = import_published(shared_data / "published_frame_indices" / "TSPO_LongVideoBench_frameIdx.json")
    short = [r for r in records if FLAG_SHORT in r.flags]
    assert 0 < len(short) < len(records)
    assert all(len(r.frame_indices) < 64 for r in short)


def test_detect_benchmark_from_rows_and_errors(tmp_path: Path):
    rows = [{"video_name": "a.mp4", "question_id": "Q0", "frame_idx": [0.0, 30.0]}]
    path = tmp_path / "my_indices.json"
    path.write_text(json.dumps(rows))
    assert detect_benchmark(path, rows) == "mlvu"
    (record,) = import_published(path)
    assert record.video == "a.mp4" and record.frame_indices == [0, 30] and record.timestamps == []
    with pytest.raises(InputError, match="no published frame-index format"):
        import_published(path, benchmark="lvbench")
    record.extra = {}
    with pytest.raises(InputError, match="annotation file"):
        export_published([record], tmp_path / "x.json")


def test_fill_video_metadata(tmp_path: Path, make_video):
    video = make_video("pub_meta.mp4", n_frames=60, fps=30.0)
    rows = [{"video_name": video.name, "question_id": "Q0", "frame_idx": [0.0, 30.0]},
            {"video_name": "absent.mp4", "question_id": "Q1", "frame_idx": [0.0]}]
    path = tmp_path / "TSPO_MLVU_frameIdx.json"
    path.write_text(json.dumps(rows))
    records = import_published(path)
    failures = fill_video_metadata(records, video.parent, decoder="pyav")
    assert [v for v, _ in failures] == ["absent.mp4"]
    assert records[0].n_frames == 60 and records[0].avg_fps == pytest.approx(30.0)
    assert records[0].candidate_stride == 30 and records[0].timestamps == [0.0, 1.0]
    assert records[1].n_frames == 0


def test_cli_import_export_diff(shared_data: Path, tmp_path: Path, capsys):
    source = shared_data / "published_frame_indices" / "TSPO_MLVU_frameIdx.json"
    index = tmp_path / "mlvu.jsonl"
    assert main(["index", "import", str(source), "--out", str(index)]) == 0
    assert main(["index", "export", str(index), "--out", str(tmp_path / "back.json")]) == 0
    assert (tmp_path / "back.json").read_bytes() == source.read_bytes()
    # a modified copy: half the frames of the first question replaced
    records = list(read_index(index).values())
    records[0].frame_indices = records[0].frame_indices[:32] + [i + 1 for i in records[0].frame_indices[32:]]
    write_index(tmp_path / "changed.jsonl", records)
    capsys.readouterr()
    assert main(["index", "diff", str(index), str(tmp_path / "changed.jsonl"), "--json",
                 "--per-question", str(tmp_path / "pq.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_common"] == 2174 and summary["identical"] == 2173
    expected = (2173 + 32 / 96) / 2174
    assert summary["mean_jaccard"] == pytest.approx(expected)
    first = json.loads((tmp_path / "pq.jsonl").read_text().splitlines()[0])
    assert first["overlap"] == 32
