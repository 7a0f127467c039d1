"""Selection-only board: how often chosen frames fall inside ground-truth time spans (no MLLM).

For benchmarks whose annotations carry time spans (LVBench ``time_reference``, the synthetic
benchmark's needles) and frame-index files (ours, TSPO's published ones, the lmms-eval samples
files of our models on ``tspo_*`` tasks, which record each answer's frames, or the side logs
``*_frames_<task>.jsonl`` they write for built-in tasks), per selector:

* hit rate: fraction of questions with at least one chosen frame inside one of its spans;
* frame fraction: chosen frames inside a span / all chosen frames (pooled over questions);
* span recall: spans containing at least one chosen frame / all spans (pooled).

Each selector is also compared with uniform sampling of the same number of frames on the same
videos, computed from the index records' video metadata (1 fps candidate grid, evenly spaced
candidates): paired bootstrap CI of the hit-rate difference and the exact McNemar test.
A frame at ``t`` seconds is inside ``[start, end]`` when ``start - tol <= t <= end + tol``.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from tspo_eval.errors import InputError
from tspo_eval.leaderboard.stats import mcnemar_exact, paired_bootstrap

Span = tuple[float, float]


def frame_hits(times: Sequence[float], spans: Sequence[Span], tolerance: float = 0.0) -> tuple[bool, int, int]:
    """(any frame inside a span, frames inside some span, spans containing a frame) for one question."""
    t = np.asarray(times, dtype=np.float64).reshape(-1, 1)
    if not len(spans) or t.size == 0:
        return False, 0, 0
    bounds = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    inside = (t >= bounds[:, 0] - tolerance) & (t <= bounds[:, 1] + tolerance)   # [frames, spans]
    frames_in = int(inside.any(axis=1).sum())
    return frames_in > 0, frames_in, int(inside.any(axis=0).sum())


@dataclass
class SpanSummary:
    """Per-question hits (``hits``: bool [n], aligned with ``question_ids``) and pooled counts."""

    question_ids: list[str]
    hits: np.ndarray
    frames_in: int
    frames_total: int
    spans_hit: int
    spans_total: int

    @property
    def hit_rate(self) -> float:
        return float(self.hits.mean()) if self.hits.size else math.nan

    @property
    def frame_fraction(self) -> float:
        return self.frames_in / self.frames_total if self.frames_total else math.nan

    @property
    def span_recall(self) -> float:
        return self.spans_hit / self.spans_total if self.spans_total else math.nan


def summarize(times: Mapping[str, Sequence[float]], spans: Mapping[str, Sequence[Span]],
              tolerance: float = 0.0) -> SpanSummary:
    """Hits of every question in ``times`` (question id -> chosen frame times in seconds) that has spans."""
    qids = [q for q in times if spans.get(q)]
    hits = np.zeros(len(qids), dtype=bool)
    frames_in = frames_total = spans_hit = spans_total = 0
    for i, qid in enumerate(qids):
        hit, f_in, s_hit = frame_hits(times[qid], spans[qid], tolerance)
        hits[i] = hit
        frames_in, frames_total = frames_in + f_in, frames_total + len(times[qid])
        spans_hit, spans_total = spans_hit + s_hit, spans_total + len(spans[qid])
    return SpanSummary(qids, hits, frames_in, frames_total, spans_hit, spans_total)


def record_times(record: Any, fallback_fps: float | None = None) -> list[float] | None:
    """Chosen frame times (s) of an IndexRecord: its timestamps, else frame / fps; None if unknown."""
    if record.timestamps and len(record.timestamps) == len(record.frame_indices):
        return [float(t) for t in record.timestamps]
    fps = record.avg_fps if record.avg_fps and record.avg_fps > 0 else fallback_fps
    if not fps:
        return None
    return [int(f) / float(fps) for f in record.frame_indices]


def uniform_times(record: Any) -> list[float] | None:
    """Times (s) uniform sampling would pick with the record's frame budget on the same 1 fps grid."""
    from tspo_eval.video.grid import uniform_frame_indices

    if not record.n_frames or not record.avg_fps or not record.frame_indices:
        return None
    stride = int(record.candidate_stride) if record.candidate_stride else max(1, round(record.avg_fps))
    grid = np.arange(0, int(record.n_frames), stride, dtype=np.int64)
    positions = uniform_frame_indices(len(grid), len(record.frame_indices))
    return [float(f) / float(record.avg_fps) for f in grid[positions]]


@dataclass
class SpanRow:
    """One selector on one benchmark (fractions in percent)."""

    benchmark: str
    selector: str
    source: str
    n: int                       # questions evaluated (in the index, with spans, with known frame times)
    missing: int                 # annotated questions with spans absent from the index
    no_timing: int               # index records whose frame times are unknown
    mean_frames: float
    hit_rate: float
    hit_low: float
    hit_high: float
    frame_fraction: float
    span_recall: float
    uniform_n: int = 0           # questions with video metadata, where uniform sampling is computed
    uniform_hit_rate: float = math.nan
    uniform_frame_fraction: float = math.nan
    uniform_span_recall: float = math.nan
    delta: float = math.nan      # selector - uniform hit rate (points) on the uniform_n questions
    delta_low: float = math.nan
    delta_high: float = math.nan
    mcnemar_b: int | None = None
    mcnemar_c: int | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SpanBoard:
    rows: list[SpanRow]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def evaluate_selector(name: str, source: str, records: Mapping[str, Any], benchmark_records: Sequence[Any],
                      n_boot: int, seed: int, confidence: float, tolerance: float) -> SpanRow:
    """The span-hit row of one selector's index records (question id -> IndexRecord) on one benchmark."""
    from tspo_eval.leaderboard.stats import bootstrap_accuracy_ci

    spans = {str(r.question_id): list(r.time_spans) for r in benchmark_records if r.time_spans}
    fps = {str(r.question_id): (r.extra or {}).get("fps") for r in benchmark_records}
    times, uniform, no_timing = {}, {}, 0
    for qid, record in records.items():
        if qid not in spans:
            continue
        chosen = record_times(record, fps.get(qid))
        if chosen is None:
            no_timing += 1
            continue
        times[qid] = chosen
        ref = uniform_times(record)
        if ref is not None:
            uniform[qid] = ref
    summary = summarize(times, spans, tolerance)
    ci = bootstrap_accuracy_ci(summary.hits, n_boot, seed, confidence)
    row = SpanRow(benchmark=benchmark_records[0].benchmark if benchmark_records else "", selector=name,
                  source=source, n=len(summary.question_ids), missing=sum(1 for q in spans if q not in records),
                  no_timing=no_timing, mean_frames=float(np.mean([len(times[q]) for q in summary.question_ids]))
                  if summary.question_ids else math.nan, hit_rate=100 * summary.hit_rate,
                  hit_low=100 * ci.low, hit_high=100 * ci.high, frame_fraction=100 * summary.frame_fraction,
                  span_recall=100 * summary.span_recall)
    if uniform:
        ref = summarize(uniform, spans, tolerance)
        mine = summarize({q: times[q] for q in ref.question_ids}, spans, tolerance)
        delta = paired_bootstrap(mine.hits, ref.hits, n_boot, seed, confidence)
        test = mcnemar_exact(mine.hits, ref.hits)
        row.uniform_n, row.uniform_hit_rate = len(ref.question_ids), 100 * ref.hit_rate
        row.uniform_frame_fraction, row.uniform_span_recall = 100 * ref.frame_fraction, 100 * ref.span_recall
        row.delta, row.delta_low, row.delta_high = 100 * delta.estimate, 100 * delta.low, 100 * delta.high
        row.mcnemar_b, row.mcnemar_c, row.p_value = test.b, test.c, test.p_value
    return row


def index_files(path: Path) -> list[Path]:
    """Frame files at ``path``: the file itself, or in a folder (an lmms-eval output folder, a folder
    of side logs) the samples files ``*_samples_<task>.jsonl`` that record frames and the side logs
    ``*_frames_<task>.jsonl`` (``<frame_selection>_frames``; older runs: ``tspo_frames``) of tasks
    without such a samples file in the same folder, and VLMEvalKit runs' ``*_tspo_frames.jsonl``;
    per-rank part files are skipped.  A folder with none of these: its ``*.jsonl`` files."""
    from tspo_eval.frame_records import SAMPLES_NAME_RE, samples_have_frames

    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"index not found: {path}")
    samples = [p for p in sorted(path.rglob("*_samples_*.jsonl")) if SAMPLES_NAME_RE.match(p.name)
               and samples_have_frames(p)]
    covered = {(p.parent, SAMPLES_NAME_RE.match(p.name).group("task")) for p in samples}
    named = {*path.rglob("*_frames_*.jsonl"), *path.rglob("*_tspo_frames.jsonl")}  # lmms-eval / VLMEvalKit side logs
    side_logs = [p for p in sorted(named) if not re.search(r"\.rank\d+\.jsonl$", p.name)
                 and not SAMPLES_NAME_RE.match(p.name) and (p.parent, _side_log_task(p)) not in covered]
    found = sorted(samples + side_logs)
    found = found or sorted(p for p in path.rglob("*.jsonl") if "_samples_" not in p.name)
    if not found:
        raise InputError(f"{path}: no frame files (samples with frames, *_frames_<task>.jsonl or *.jsonl) "
                         "in this folder")
    return found


def _side_log_task(path: Path) -> str:
    """The task of a side log ``..._frames_<task>.jsonl``."""
    return path.name[: -len(".jsonl")].rsplit("_frames_", 1)[-1]


def selector_name(records: Mapping[str, Any], path: Path) -> str:
    """Default label ``<scorer>-<strategy>-<K>`` of the records (repeats dropped: ``uniform-4``;
    K: the most common frame count)."""
    if not records:
        return path.stem
    first = next(iter(records.values()))
    k = Counter(len(r.frame_indices) for r in records.values()).most_common(1)[0][0]
    parts = list(dict.fromkeys(p for p in (first.scorer, first.strategy) if p)) or ["unknown"]
    return "-".join([*parts, str(k)])


def build_span_board(specs: Sequence[str], annotations: Mapping[str, Sequence[Any]], n_boot: int = 10000,
                     seed: int = 0, confidence: float = 0.95, tolerance: float = 0.0) -> SpanBoard:
    """Rows for every ``[NAME=]PATH`` index source and every benchmark with annotations and spans."""
    from tspo_eval.frame_records import read_frames
    from tspo_eval.leaderboard.runs import split_spec

    if not annotations:
        raise InputError("the selection-only board needs --annotations BENCH=FILE (ground-truth spans)")
    board = SpanBoard(rows=[], settings={"bootstrap": n_boot, "seed": seed, "confidence": confidence,
                                         "tolerance_s": tolerance})
    names: Counter[str] = Counter()
    for spec in specs:
        given, path = split_spec(spec)
        for file in index_files(path):
            records = read_frames(file)
            by_bench: dict[str, dict[str, Any]] = {}
            for qid, record in records.items():
                by_bench.setdefault(record.benchmark, {})[qid] = record
            for bench, group in by_bench.items():
                if bench not in annotations:
                    board.notes.append(f"{file}: {len(group)} {bench} records skipped (no --annotations {bench}=FILE)")
                    continue
                if not any(r.time_spans for r in annotations[bench]):
                    board.notes.append(f"{bench}: the annotation has no time spans")
                    continue
                name = given or selector_name(group, file)
                names[(bench, name)] += 1
                if names[(bench, name)] > 1:
                    name = f"{name} ({file.stem})"
                row = evaluate_selector(name, str(file), group, annotations[bench], n_boot, seed, confidence, tolerance)
                if row.no_timing:
                    board.notes.append(f"{bench}: {name}: {row.no_timing} records without frame times skipped")
                if row.n and row.uniform_n < row.n:
                    board.notes.append(f"{bench}: {name}: uniform reference on {row.uniform_n} of {row.n} "
                                       f"questions (the others lack video metadata)")
                board.rows.append(row)
                logger.info("{} {}: hit rate {:.1f}% on {} questions", bench, name, row.hit_rate, row.n)
    if not board.rows:
        raise InputError("no index records matched an annotation with time spans")
    return board
