"""VLMEvalKit data TSVs built from the original annotation files.

VLMEvalKit builds its own TSV for a video dataset and checks it by md5, so ours must match byte
for byte. The recipes (re-implemented from their description, without pandas so the bytes do
not drift with the pandas version):

* LongVideoBench: every field of ``lvb_val.json`` in file order, then ``index`` (0..N-1) and
  ``video`` (= ``video_id``); ``video_path`` becomes ``./videos/<video_path>``.
* Video-MME: ``index, video (= videoID), video_path (./video/<videoID>.mp4), duration, domain,
  candidates (the lettered option list), sub_category, task_type, subtitle_path
  (./subtitle/<videoID>.srt), question, answer``.
* MLVU (MLVU_MCQ columns): ``task_type, prefix (./MLVU/video/<n>_<task>), duration, video,
  question (stem), answer (option TEXT), candidates, index`` plus ``question_id``.
* LVBench (same style; VLMEvalKit has none): ``index, video (key), video_path (./<key>.mp4),
  question_id (uid), question (stem), candidates, answer (letter), question_type (list),
  time_reference, duration (s), video_type``.

Cells are written as pandas ``to_csv(sep="\\t", index=False)`` writes them: integer columns as
integers, a numeric column holding any float (or a gap) as floats (``600.0``), lists as their
Python ``str``, gaps as empty cells, csv minimal quoting, ``\\n`` line ends.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from tspo_eval.benchmarks.base import Benchmark
from tspo_eval.benchmarks.records import QuestionRecord
from tspo_eval.benchmarks.registry import get_benchmark
from tspo_eval.errors import AnnotationError, InputError

MLVU_PREFIXES = {
    "plotQA": "./MLVU/video/1_plotQA", "needle": "./MLVU/video/2_needle", "ego": "./MLVU/video/3_ego",
    "count": "./MLVU/video/4_count", "order": "./MLVU/video/5_order",
    "anomaly_reco": "./MLVU/video/6_anomaly_reco", "topic_reasoning": "./MLVU/video/7_topic_reasoning",
}
_MISSING = object()


# ---- cell formatting -------------------------------------------------------------------------
def _is_gap(value: Any) -> bool:
    return value is _MISSING or value is None or (isinstance(value, float) and math.isnan(value))


def _column_kind(values: Sequence[Any]) -> str:
    """"int" (all ints), "float" (numbers with a float or a gap), else "object"."""
    present = [v for v in values if not _is_gap(v)]
    numeric = present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if not numeric:
        return "object"
    if len(present) == len(values) and all(isinstance(v, int) for v in present):
        return "int"
    return "float"


def _cell(value: Any, kind: str) -> str:
    if _is_gap(value):
        return ""
    if kind == "float":
        return repr(float(value))
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, str) else str(value)


def format_tsv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """Tab-separated text of ``rows`` (dicts; absent keys are gaps) under a ``columns`` header."""
    kinds = {c: _column_kind([row.get(c, _MISSING) for row in rows]) for c in columns}
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(list(columns))
    for row in rows:
        writer.writerow([_cell(row.get(c, _MISSING), kinds[c]) for c in columns])
    return buffer.getvalue()


def _ordered_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


# ---- per-benchmark tables ---------------------------------------------------------------------
def _raw_json_rows(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of question objects")
    return data


def longvideobench_table(path: Path, records: Sequence[QuestionRecord]) -> tuple[list[str], list[dict]]:
    raw_rows = _raw_json_rows(path)
    columns = _ordered_keys(raw_rows)
    columns += [c for c in ("index", "video") if c not in columns]     # new columns go last
    rows = [dict(raw, index=i, video=raw["video_id"], video_path=f"./videos/{raw['video_path']}")
            for i, raw in enumerate(raw_rows)]
    return columns, rows


def videomme_table(path: Path, records: Sequence[QuestionRecord]) -> tuple[list[str], list[dict]]:
    columns = ["index", "video", "video_path", "duration", "domain", "candidates", "sub_category",
               "task_type", "subtitle_path", "question", "answer"]
    rows = []
    for i, raw in enumerate(_raw_json_rows(path)):
        vid = raw["videoID"]
        rows.append({"index": i, "video": vid, "video_path": f"./video/{vid}.mp4", "duration": raw["duration"],
                     "domain": raw["domain"], "candidates": list(raw["options"]), "sub_category": raw["sub_category"],
                     "task_type": raw["task_type"], "subtitle_path": f"./subtitle/{vid}.srt",
                     "question": raw["question"], "answer": raw["answer"]})
    return columns, rows


def mlvu_table(path: Path, records: Sequence[QuestionRecord]) -> tuple[list[str], list[dict]]:
    columns = ["task_type", "prefix", "duration", "video", "question", "answer", "candidates", "index", "question_id"]
    rows = []
    for i, r in enumerate(records):
        task = r.categories["task_type"][0]
        rows.append({"task_type": task, "prefix": MLVU_PREFIXES.get(task, f"./MLVU/video/{task}"),
                     "duration": r.duration, "video": r.video, "question": r.question,
                     "answer": r.options[r.answer_index], "candidates": list(r.options), "index": i,
                     "question_id": r.question_id})
    return columns, rows


def lvbench_table(path: Path, records: Sequence[QuestionRecord]) -> tuple[list[str], list[dict]]:
    from tspo_eval.benchmarks.lvbench import QUESTION_TYPE_CODES

    names = {code: name for name, code in QUESTION_TYPE_CODES.items()}
    columns = ["index", "video", "video_path", "question_id", "question", "candidates", "answer",
               "question_type", "time_reference", "duration", "video_type"]
    rows = []
    for i, r in enumerate(records):
        key = r.extra.get("key") or r.video.rsplit(".", 1)[0]
        rows.append({"index": i, "video": key, "video_path": f"./{r.video}", "question_id": r.question_id,
                     "question": r.question, "candidates": list(r.options), "answer": r.answer,
                     "question_type": [names.get(t, t) for t in r.categories["question_type"]],
                     "time_reference": r.extra.get("time_reference"), "duration": r.duration,
                     "video_type": r.extra.get("video_type")})
    return columns, rows


def synthetic_table(path: Path, records: Sequence[QuestionRecord]) -> tuple[list[str], list[dict]]:
    columns = ["index", "video", "video_path", "question_id", "question", "candidates", "answer", "task_type",
               "time_spans", "duration"]
    rows = [{"index": i, "video": r.video.rsplit(".", 1)[0], "video_path": f"./{r.video}",
             "question_id": r.question_id, "question": r.question, "candidates": list(r.options),
             "answer": r.answer, "task_type": r.categories["task_type"][0],
             "time_spans": [list(s) for s in r.time_spans], "duration": r.duration} for i, r in enumerate(records)]
    return columns, rows


TABLES: dict[str, Callable[[Path, Sequence[QuestionRecord]], tuple[list[str], list[dict]]]] = {
    "longvideobench": longvideobench_table, "videomme": videomme_table, "mlvu": mlvu_table,
    "lvbench": lvbench_table, "synthetic": synthetic_table,
}


def build_vlmevalkit_tsv(benchmark: str | Benchmark, annotation_path: str | Path) -> str:
    """The VLMEvalKit TSV text for ``annotation_path`` (validated with ``Benchmark.load`` first)."""
    bench = get_benchmark(benchmark)
    if bench.name not in TABLES:
        raise InputError(f"no VLMEvalKit TSV recipe for {bench.name}")
    path = Path(annotation_path)
    records = bench.load(path)
    columns, rows = TABLES[bench.name](path, records)
    return format_tsv(columns, rows)
