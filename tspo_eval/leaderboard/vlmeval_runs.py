"""Read VLMEvalKit per-question files into :class:`~tspo_eval.leaderboard.run.Run` objects.

VLMEvalKit writes ``outputs/<model>/[T<date>_G<commit>/]<model>_<dataset>.xlsx`` (predictions)
and, after evaluation, ``<model>_<dataset>_score.xlsx`` (the same rows plus a per-row ``score``);
video datasets carry the frame budget in their name (``Video-MME_64frame``).  Aggregates
(``*_acc.csv``, ``*_rating.json``) are not per question and are ignored.

A table with a ``score`` / ``hit`` / ``correct`` column is read as is (value > 0 is correct).
A prediction table without one is re-scored with :func:`tspo_eval.benchmarks.score_predictions`,
which needs the benchmark's annotation (``--annotations BENCH=FILE``).

Frame source label: runs of our models leave ``<model>_<dataset>_tspo_frames.jsonl`` next to
their predictions (one IndexRecord per answer, ``extra.frame_source`` saying where its frames
came from).  The label is the run's requested source, plus ``+uniform(n/N)`` for answers that
fell back to uniform frames and ``+frameless(n/N)`` for answers holding VLMEvalKit's failure
message (no frames at all), e.g. ``index+uniform(12/1549)``; the counts go to ``details``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.benchmarks.predictions import read_table
from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.leaderboard.run import Run, benchmark_from_name
from tspo_eval.model_adapters.vlmevalkit_summary import (
    SIDE_LOG_SUFFIX,
    is_failed_answer,
    requested_source,
    summarize,
)

TABLE_SUFFIXES = (".xlsx", ".xls", ".csv", ".tsv")
_AGGREGATE_RE = re.compile(r"_(acc|rating|auxmatch|tmp|supp|openai_result)\b", re.IGNORECASE)
_SCORE_COLUMNS = ("score", "hit", "correct")
_ID_COLUMNS = ("question_id", "qid", "id", "uid")
_BREAKDOWN_COLUMNS = ("duration", "domain", "task_type", "duration_group", "question_category",
                      "question_type", "sub_category")


def read_dir(root: Path, annotations: Mapping[str, Sequence[Any]] | None = None) -> list[Run]:
    """Runs of every per-question VLMEvalKit table under ``root`` (score files win over predictions)."""
    tables = [p for p in sorted(root.rglob("*")) if p.suffix.lower() in TABLE_SUFFIXES
              and not _AGGREGATE_RE.search(p.stem) and not p.name.startswith("~$")]
    tables = _without_links_to(tables)
    scored = {p.with_name(p.name.replace("_score", "", 1)).with_suffix("") for p in tables if "_score" in p.stem}
    runs = []
    for path in tables:
        if "_score" not in path.stem and path.with_suffix("") in scored:
            continue   # its _score file has the verdicts
        try:
            runs.append(read_file(path, annotations))
        except AnnotationError as exc:
            logger.warning("skipped {}: {}", path, exc)
    return runs


def _without_links_to(paths: list[Path]) -> list[Path]:
    """``paths`` without symlinks to another listed file (run.py links each run's files into the
    model folder: one run, two paths)."""
    real = {p.resolve() for p in paths if not p.is_symlink()}
    return [p for p in paths if not (p.is_symlink() and p.resolve() in real)]


def model_from_path(path: Path) -> str:
    """The model folder of a VLMEvalKit output (skipping a ``T<date>_G<commit>`` level)."""
    parent = path.parent
    if re.match(r"^T\d{8}", parent.name) and parent.parent.name:
        parent = parent.parent
    return parent.name or path.stem


def frame_source_from_model(model: str) -> str:
    """Our VLMEvalKit models carry the selector in their name; others sample uniformly."""
    lowered = model.lower()
    for source in ("tspo", "clip", "index", "uniform"):
        if source in lowered:
            return source
    return "uniform"


def read_nonempty_table(path: Path):
    """A VLMEvalKit table (:func:`~tspo_eval.benchmarks.predictions.read_table`); AnnotationError when empty."""
    table = read_table(path)
    if table.empty:
        raise AnnotationError(f"{path}: empty table")
    return table


def read_file(path: Path, annotations: Mapping[str, Sequence[Any]] | None = None) -> Run:
    """One run from a VLMEvalKit score or prediction table."""
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"{path}: not a VLMEvalKit table ({', '.join(TABLE_SUFFIXES)})")
    benchmark = benchmark_from_name(path.stem)
    if benchmark is None:
        raise AnnotationError(f"{path}: cannot tell the benchmark from the file name")
    table = read_nonempty_table(path)
    if _is_frame_index_table(table):
        raise AnnotationError(f"{path}: frame indices (TSPO_FrameIndex output), not answers")
    model = model_from_path(path)
    frames = re.search(r"(\d+)frame", path.stem)
    score_col = next((c for c in _SCORE_COLUMNS if c in table.columns), None)
    if score_col is not None:
        ids = _row_ids(path, table, (annotations or {}).get(benchmark))
        outcomes: dict[str, bool] = {}
        duplicates = 0
        for qid, value in zip(ids, table[score_col]):
            if qid in outcomes:
                duplicates += 1
                continue
            outcomes[qid] = _truthy(value)
        categories = _table_categories(table, ids)
    else:
        outcomes, categories, duplicates = _rescore(path, benchmark, annotations), {}, 0
    details: dict[str, Any] = {"score_column": score_col}
    source = frame_source_label(path, table, model, details)
    return Run(name="", benchmark=benchmark, model=model, frame_source=source,
               num_frames=int(frames.group(1)) if frames else None, outcomes=outcomes, categories=categories,
               host="vlmevalkit", path=str(path), details=details, duplicates=duplicates)


def _is_frame_index_table(table) -> bool:
    """Whether a prediction table holds IndexRecord JSON (the frame-index generator's "answers")."""
    if "prediction" not in table.columns or "score" in table.columns:
        return False
    first = next((p for p in table["prediction"] if isinstance(p, str) and not is_failed_answer(p)), "")
    return first.startswith("{") and '"frame_indices"' in first


def side_log_of(path: Path) -> Path:
    """The frame side log of a prediction / score table: ``<model>_<dataset>_tspo_frames.jsonl``."""
    stem = path.stem.removesuffix("_score")
    return path.with_name(stem + SIDE_LOG_SUFFIX)


def frame_source_label(path: Path, table, model: str, details: dict[str, Any]) -> str:
    """The run's frame source, with its fallbacks (see the module docstring); fills ``details``."""
    predictions = list(table["prediction"]) if "prediction" in table.columns else []
    side_log = side_log_of(path)
    records: list[Any] = []
    if side_log.is_file():
        from tspo_eval.frame_index_cache.index_files import read_index

        try:
            records = list(read_index(side_log).values())
        except (AnnotationError, InputError) as exc:
            logger.warning("{}: unreadable frame side log ({}); frame sources not checked", side_log, exc)
    requested = requested_source(records) if records else None
    if requested is None:
        requested = frame_source_from_model(model)
    summary = summarize(requested, records, predictions, answers=len(table))
    if records:
        details["frame_sources"] = summary.to_dict()
        details["frame_log"] = str(side_log)
        return summary.label()
    frameless = sum(is_failed_answer(p) for p in predictions)
    if frameless:
        details["frameless"] = frameless
        return f"{requested}+frameless({frameless}/{len(table)})"
    return requested


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "1.0", "true", "yes", "correct")
    try:
        return not math.isnan(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def _id_text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _row_ids(path: Path, table, records: Sequence[Any] | None) -> list[str]:
    """Question ids of the rows: an id column, else ``index`` (mapped to the annotation when given)."""
    for column in _ID_COLUMNS:
        if column in table.columns and table[column].notna().all():
            return [_id_text(v) for v in table[column]]
    if "index" not in table.columns:
        raise AnnotationError(f"{path}: no question id column ({', '.join(_ID_COLUMNS)}) and no 'index'")
    positions = [int(float(v)) for v in table["index"]]
    if records is not None and all(0 <= p < len(records) for p in positions):
        return [str(records[p].question_id) for p in positions]
    return [str(p) for p in positions]


def _table_categories(table, ids: list[str]) -> dict[str, dict[str, list[str]]]:
    columns = [c for c in _BREAKDOWN_COLUMNS if c in table.columns]
    out: dict[str, dict[str, list[str]]] = {}
    for i, qid in enumerate(ids):
        cats = {}
        for column in columns:
            value = table[column].iloc[i]
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                cats[column] = [_id_text(value)]
        out.setdefault(qid, cats)
    return out


def _rescore(path: Path, benchmark: str, annotations: Mapping[str, Sequence[Any]] | None) -> dict[str, bool]:
    """Per-question verdicts of a prediction table, scored by the benchmark's rule."""
    records = (annotations or {}).get(benchmark)
    if records is None:
        raise AnnotationError(f"{path}: no score column; pass --annotations {benchmark}=FILE to re-score "
                              f"its predictions")
    from tspo_eval.benchmarks import load_predictions, score_predictions

    predictions = load_predictions(path, records)
    report = score_predictions(benchmark, records, predictions)
    return {str(q): bool(v) for q, v in report.to_dict()["per_question"].items() if str(q) in predictions}
