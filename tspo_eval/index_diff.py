"""Compare two frame-index files question by question.

For every question in both files: the overlap (frames chosen by both), the Jaccard index
``|A & B| / |A | B|`` of the two frame sets, and, when ground-truth time spans are known (LVBench's
``time_reference``, the synthetic benchmark's needles), the fraction of each side's frames that
fall inside a span (``span_frame_fraction_a`` / ``_b``: a share of frames, not a per-question
hit). Frame numbers are compared exactly (same source video). The per-question rows are written
through :mod:`tspo_eval.atomic_files`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tspo_eval.atomic_files import atomic_write
from tspo_eval.frame_index_cache.index_store import IndexRecord

Span = tuple[float, float]


@dataclass
class QuestionDiff:
    """One question present in both files."""

    question_id: str
    video: str
    n_a: int
    n_b: int
    overlap: int              # |A & B|
    jaccard: float            # |A & B| / |A | B| (1.0 when both are empty)
    span_frame_fraction_a: float | None  # fraction of A's frames inside a ground-truth span (None: no spans / no fps)
    span_frame_fraction_b: float | None


@dataclass
class IndexDiff:
    """Summary of two index files; ``questions`` holds the per-question rows (sorted by id)."""

    n_a: int
    n_b: int
    only_a: list[str]
    only_b: list[str]
    questions: list[QuestionDiff] = field(default_factory=list)

    @property
    def n_common(self) -> int:
        return len(self.questions)

    @property
    def mean_jaccard(self) -> float | None:
        return _mean([q.jaccard for q in self.questions])

    @property
    def mean_overlap(self) -> float | None:
        return _mean([q.overlap for q in self.questions])

    @property
    def identical(self) -> int:
        return sum(q.jaccard == 1.0 for q in self.questions)

    def span_frame_fraction(self, side: str) -> float | None:
        """Pooled fraction of ``side``'s ("a"/"b") frames inside spans, over the questions with spans."""
        inside = total = 0
        for q in self.questions:
            rate, n = (q.span_frame_fraction_a, q.n_a) if side == "a" else (q.span_frame_fraction_b, q.n_b)
            if rate is not None:
                inside += rate * n
                total += n
        return inside / total if total else None

    def to_dict(self, per_question: bool = True) -> dict:
        out = {
            "n_a": self.n_a, "n_b": self.n_b, "n_common": self.n_common,
            "only_a": len(self.only_a), "only_b": len(self.only_b),
            "mean_jaccard": self.mean_jaccard, "mean_overlap": self.mean_overlap, "identical": self.identical,
            "span_frame_fraction_a": self.span_frame_fraction("a"),
            "span_frame_fraction_b": self.span_frame_fraction("b"),
            "questions_with_spans": sum(_has_spans(q) for q in self.questions),
        }
        if per_question:
            out["per_question"] = [asdict(q) for q in self.questions]
        return out

    def summary(self, name_a: str = "A", name_b: str = "B") -> str:
        """A short human-readable report."""
        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"

        jaccard = "n/a" if self.mean_jaccard is None else f"{self.mean_jaccard:.4f}"
        overlap = "n/a" if self.mean_overlap is None else f"{self.mean_overlap:.2f}"
        lines = [
            (f"questions: {name_a}={self.n_a}  {name_b}={self.n_b}  common={self.n_common}  "
             f"only in {name_a}={len(self.only_a)}  only in {name_b}={len(self.only_b)}"),
            f"mean Jaccard: {jaccard}   mean overlap: {overlap} frames   identical selections: {self.identical}",
        ]
        if any(_has_spans(q) for q in self.questions):
            lines.append(f"frames inside ground-truth spans: {name_a}={pct(self.span_frame_fraction('a'))}  "
                         f"{name_b}={pct(self.span_frame_fraction('b'))}")
        return "\n".join(lines)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _has_spans(q: QuestionDiff) -> bool:
    return q.span_frame_fraction_a is not None or q.span_frame_fraction_b is not None


def span_frame_fraction(frame_indices: Sequence[int], avg_fps: float, spans: Sequence[Span]) -> float | None:
    """Fraction of frames whose time ``index / avg_fps`` lies in some ``[start, end]`` span (None if unknown)."""
    if not spans or not avg_fps or avg_fps <= 0:
        return None
    if not frame_indices:
        return 0.0
    inside = sum(any(s <= i / avg_fps <= e for s, e in spans) for i in frame_indices)
    return inside / len(frame_indices)


def diff_indices(a: Mapping[str, IndexRecord], b: Mapping[str, IndexRecord],
                 spans: Mapping[str, Sequence[Span]] | None = None) -> IndexDiff:
    """Compare two indices keyed by question id; ``spans`` maps question ids to ground-truth spans (s).

    A record without ``avg_fps`` (an imported published row) borrows the other side's frame rate
    for the span test (both name the same video).
    """
    common = sorted(set(a) & set(b))
    result = IndexDiff(n_a=len(a), n_b=len(b), only_a=sorted(set(a) - set(b)), only_b=sorted(set(b) - set(a)))
    for qid in common:
        ra, rb = a[qid], b[qid]
        sa, sb = set(ra.frame_indices), set(rb.frame_indices)
        union = sa | sb
        fps = ra.avg_fps or rb.avg_fps
        qspans = list((spans or {}).get(qid, []))
        result.questions.append(QuestionDiff(
            question_id=qid, video=ra.video, n_a=len(ra.frame_indices), n_b=len(rb.frame_indices),
            overlap=len(sa & sb), jaccard=len(sa & sb) / len(union) if union else 1.0,
            span_frame_fraction_a=span_frame_fraction(ra.frame_indices, ra.avg_fps or fps, qspans),
            span_frame_fraction_b=span_frame_fraction(rb.frame_indices, rb.avg_fps or fps, qspans),
        ))
    return result


def load_spans(benchmark: str, annotations: str | Path) -> dict[str, list[Span]]:
    """Ground-truth spans per question id from a benchmark's annotations (empty lists are dropped)."""
    from tspo_eval.benchmarks import get_benchmark

    records = get_benchmark(benchmark).load(annotations)
    return {r.question_id: [(float(s), float(e)) for s, e in r.time_spans] for r in records if r.time_spans}


def write_per_question(diff: IndexDiff, out: str | Path) -> Path:
    """Per-question rows as JSONL (one ``QuestionDiff`` per line), written atomically."""
    out = Path(out)
    atomic_write(out, "".join(json.dumps(asdict(q)) + "\n" for q in diff.questions))
    return out
