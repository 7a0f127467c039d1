"""TSPO's published frame-index files (``TSPO_<Benchmark>_frameIdx.json``): import and export.

A published file is a JSON array of the benchmark's original annotation rows, in annotation
order, each with an added ``frame_idx`` list: up to 64 source frame numbers on the 1 fps grid,
written as floats (``30.0``). Rows join on the question key of the benchmark:

============== ================ =========================
benchmark      question key     video file
============== ================ =========================
longvideobench ``id``           ``video_path``
mlvu           ``question_id``  ``video_name``
videomme       ``question_id``  ``videoID`` + ``.mp4``
============== ================ =========================

Import keeps every row, including rows with fewer than 64 indices (flagged
:data:`~tspo_eval.frame_index_cache.index_store.FLAG_SHORT`; the reference evaluation fell back
to uniform sampling for them), and stores the original row so that export reproduces the file
byte for byte. Published rows carry no video metadata: ``n_frames``/``avg_fps``/``candidate_stride``
stay 0 and ``timestamps`` empty unless :func:`fill_video_metadata` reads them from the videos.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.atomic_files import atomic_write
from tspo_eval.errors import AnnotationError, InputError, TspoEvalError
from tspo_eval.frame_index_cache.index_store import (
    FLAG_IMPORTED,
    FLAG_SHORT,
    IndexRecord,
    timestamps_for,
)

PUBLISHED_NUM_FRAMES = 64
SOURCE_ROW = "source_row"


@dataclass(frozen=True)
class PublishedFormat:
    """How one benchmark's published rows name their question and video."""

    benchmark: str
    file_name: str           # TSPO's file name for this benchmark
    question_key: str        # join key of the row
    video: Callable[[dict], str]
    strategy: str            # selection strategy of the reference evaluation


PUBLISHED_FORMATS: dict[str, PublishedFormat] = {
    "longvideobench": PublishedFormat(
        "longvideobench", "TSPO_LongVideoBench_frameIdx.json", "id", lambda r: str(r["video_path"]), "topk"),
    "mlvu": PublishedFormat(
        "mlvu", "TSPO_MLVU_frameIdx.json", "question_id", lambda r: str(r["video_name"]), "topk"),
    "videomme": PublishedFormat(
        "videomme", "TSPO_VideoMME_frameIdx.json", "question_id", lambda r: f"{r['videoID']}.mp4", "bin-max"),
}


def detect_benchmark(path: str | Path, rows: Sequence[dict] | None = None) -> str:
    """Benchmark of a published file, from its name (``TSPO_MLVU_...``) or else its row keys."""
    name = Path(path).name.lower()
    for bench, fmt in PUBLISHED_FORMATS.items():
        if name == fmt.file_name.lower() or bench in name.replace("_", ""):
            return bench
    if rows:
        keys = set(rows[0])
        if "videoID" in keys:
            return "videomme"
        if "correct_choice" in keys or ("id" in keys and "video_path" in keys):
            return "longvideobench"
        if "video_name" in keys and "question_id" in keys:
            return "mlvu"
    raise InputError(f"{path}: cannot tell which benchmark this published index file is for; pass benchmark=")


def _format(benchmark: str) -> PublishedFormat:
    try:
        return PUBLISHED_FORMATS[benchmark.lower()]
    except KeyError:
        raise InputError(
            f"no published frame-index format for benchmark {benchmark!r} (known: {', '.join(PUBLISHED_FORMATS)})"
        ) from None


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-array file (published index or original annotation); JSONL is accepted too."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON/JSONL: {exc}") from exc
    if not all(isinstance(row, dict) for row in data):
        raise AnnotationError(f"{path}: expected a list of JSON objects")
    return data


def import_published(path: str | Path, benchmark: str | None = None) -> list[IndexRecord]:
    """Index records of a published ``*_frameIdx.json`` file, in the file's row order."""
    path = Path(path)
    rows = load_rows(path)
    fmt = _format(benchmark or detect_benchmark(path, rows))
    records: list[IndexRecord] = []
    for n, row in enumerate(rows):
        where = f"{path}: row {n}"
        if fmt.question_key not in row or "frame_idx" not in row:
            raise AnnotationError(f"{where}: lacks {fmt.question_key!r} or 'frame_idx'")
        try:
            indices = [round(float(v)) for v in row["frame_idx"]]
            video = fmt.video(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnnotationError(f"{where} ({row.get(fmt.question_key)!r}): malformed: {exc}") from exc
        source_row = {k: v for k, v in row.items() if k != "frame_idx"}
        flags = [FLAG_IMPORTED] + ([FLAG_SHORT] if len(indices) < PUBLISHED_NUM_FRAMES else [])
        records.append(IndexRecord(
            benchmark=fmt.benchmark, question_id=str(row[fmt.question_key]), video=video,
            n_frames=0, avg_fps=0.0, candidate_stride=0, frame_indices=indices, timestamps=[],
            strategy=fmt.strategy, scorer="tspo", agent_fingerprint="published:TSPO-0.4B", clip_fingerprint="",
            flags=flags, extra={"source": path.name, SOURCE_ROW: source_row},
        ))
    short = sum(FLAG_SHORT in r.flags for r in records)
    if short:
        logger.info("{}: {}/{} rows have fewer than {} indices (kept, flagged)", path.name, short, len(records),
                    PUBLISHED_NUM_FRAMES)
    return records


def fill_video_metadata(records: Iterable[IndexRecord], video_root: str | Path, decoder: str = "auto",
                        fps: float = 1.0) -> list[tuple[str, str]]:
    """Fill ``n_frames``/``avg_fps``/``candidate_stride``/``timestamps`` from the videos (opened once each).

    Returns ``[(video, reason)]`` for videos that could not be read (their records stay as they were).
    """
    from tspo_eval.video import candidate_stride, open_video

    by_video: dict[str, list[IndexRecord]] = {}
    for record in records:
        by_video.setdefault(record.video, []).append(record)
    failures: list[tuple[str, str]] = []
    for video in sorted(by_video):
        try:
            with open_video(str(Path(video_root) / video), decoder=decoder) as reader:
                meta = reader.metadata
                times = [  # presentation times (VFR-safe); frame_index / avg_fps for out-of-range rows
                    [round(float(t), 6) for t in reader.frame_times(r.frame_indices)]
                    if all(0 <= int(i) < meta.n_frames for i in r.frame_indices)
                    else timestamps_for(r.frame_indices, meta.avg_fps)
                    for r in by_video[video]
                ]
        except TspoEvalError as exc:
            failures.append((video, str(exc)))
            continue
        for record, record_times in zip(by_video[video], times):
            record.n_frames, record.avg_fps = int(meta.n_frames), float(meta.avg_fps)
            record.candidate_stride = int(candidate_stride(meta.avg_fps, fps))
            record.timestamps = record_times
    return failures


def published_rows(records: Sequence[IndexRecord], annotations: str | Path | None = None,
                   benchmark: str | None = None) -> tuple[list[dict], list[str]]:
    """Rows in the published format and the ids that had no record (or no annotation row).

    With ``annotations`` (the benchmark's original row-per-question file), rows follow the
    annotation order and every annotation row with a record is emitted; without it, each record
    must carry its original row (records imported from a published file do).
    """
    rows: list[dict] = []
    missing: list[str] = []
    if annotations is not None:
        ann_rows = load_rows(annotations)
        bench = benchmark or (records[0].benchmark if records else None) or detect_benchmark(annotations, ann_rows)
        key = _format(bench).question_key
        by_id = {r.question_id: r for r in records}
        for row in ann_rows:
            if key not in row:
                raise AnnotationError(f"{annotations}: a row lacks the question key {key!r}")
            record = by_id.pop(str(row[key]), None)
            if record is None:
                missing.append(str(row[key]))
                continue
            rows.append({**{k: v for k, v in row.items() if k != "frame_idx"},
                         "frame_idx": [float(i) for i in record.frame_indices]})
        missing.extend(sorted(by_id))  # records without an annotation row
        return rows, missing
    for record in records:
        source = record.extra.get(SOURCE_ROW)
        if not isinstance(source, dict):
            raise InputError(
                f"record {record.question_id!r} has no original annotation row; pass the benchmark's annotation file")
        rows.append({**source, "frame_idx": [float(i) for i in record.frame_indices]})
    return rows, missing


def export_published(records: Sequence[IndexRecord], out: str | Path, annotations: str | Path | None = None,
                     benchmark: str | None = None) -> tuple[int, list[str]]:
    """Write ``records`` as a TSPO ``*_frameIdx.json`` file (atomically); returns (rows written, missing ids)."""
    rows, missing = published_rows(records, annotations, benchmark)
    out = Path(out)
    atomic_write(out, json.dumps(rows))  # json's defaults: the published files' exact bytes
    if missing:
        logger.warning("{}: {} questions without a record or annotation row were left out", out, len(missing))
    return len(rows), missing
