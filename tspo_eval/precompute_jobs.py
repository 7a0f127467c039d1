"""The per-video step of a precomputation: questions grouped by video, each video encoded once.

:func:`plan_jobs` groups a benchmark's questions by video in canonical order; :func:`run_jobs`
(serial) and :func:`tspo_eval.precompute_parallel.run_jobs_parallel` (decoding in worker
processes) both run :func:`run_video_job` per video and count what happened in a
:class:`PrecomputeReport`. The command around them (files, ranks, merging) is :mod:`tspo_eval.precompute`.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from tqdm import tqdm

from tspo_eval.errors import InputError, TspoEvalError, VideoError
from tspo_eval.frame_index_cache.index_store import (
    IndexRecord,
    IndexWriter,
    _natural_key,
)

if TYPE_CHECKING:  # pragma: no cover
    from tspo_eval.benchmarks import Benchmark, QuestionRecord
    from tspo_eval.selection import FrameSelector


# errors a broken video file can raise from inside a decoder besides VideoError
_DECODE_ERRORS = (TspoEvalError, OSError, RuntimeError, ValueError, EOFError)


@dataclass
class VideoJob:
    """One video and its questions (canonical order)."""

    video: str                          # name relative to the video root
    questions: list[QuestionRecord]


@dataclass
class Failure:
    question_id: str
    video: str
    reason: str

    def to_json(self) -> str:
        return json.dumps({"question_id": self.question_id, "video": self.video, "reason": self.reason},
                          ensure_ascii=False)


@dataclass
class PrecomputeReport:
    """What one run (or one rank) did."""

    n_questions: int = 0        # questions in this rank's share
    n_videos: int = 0
    written: int = 0            # records written by this run
    skipped: int = 0            # already in the output (resume)
    encodes: int = 0            # videos whose candidates were encoded (select_many calls that succeeded)
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    total_failed: int = 0       # over all ranks (filled after the merge)

    def summary(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.written} written, {self.skipped} already done, {len(self.failures)} failed "
                f"({self.n_questions} questions in {self.n_videos} videos, {self.seconds:.1f}s, {rate:.2f} q/s)")


# ---- planning ---------------------------------------------------------------------------------------
def plan_jobs(records: Sequence[QuestionRecord], limit: int | None = None) -> list[VideoJob]:
    """Group questions by video in canonical order; ``limit`` keeps the first N questions of that order."""
    ordered = sorted(records, key=lambda r: (r.video, _natural_key(r.question_id), r.question_id))
    if limit is not None:
        if limit <= 0:
            raise InputError(f"--limit must be positive, got {limit}")
        ordered = ordered[:limit]
    jobs: dict[str, VideoJob] = {}
    for record in ordered:
        jobs.setdefault(record.video, VideoJob(record.video, [])).questions.append(record)
    return list(jobs.values())


# ---- the per-video loop -----------------------------------------------------------------------------
class JobProgress:
    """The bookkeeping both loops share: the report, the questions already done (resume), the bar.

    Use as a context manager; :meth:`todo` gives a job's questions still to do (counting the others
    as skipped), :meth:`advance` moves the bar by finished videos.
    """

    def __init__(self, jobs: Sequence[VideoJob], writer: IndexWriter, skip_ids: set[str] | None,
                 progress: bool | None, desc: str) -> None:
        self.report = PrecomputeReport(n_videos=len(jobs), n_questions=sum(len(j.questions) for j in jobs))
        self.done = set(skip_ids or ()) | writer.done_ids()
        self.started = time.perf_counter()
        show = sys.stderr.isatty() if progress is None else progress
        self.bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not show, dynamic_ncols=True)

    def todo(self, job: VideoJob) -> list[QuestionRecord]:
        todo = [q for q in job.questions if q.question_id not in self.done]
        self.report.skipped += len(job.questions) - len(todo)
        return todo

    def advance(self, videos: int = 1) -> None:
        report = self.report
        self.bar.update(videos)
        done_q = report.written + report.skipped + len(report.failures)
        self.bar.set_postfix(questions=f"{done_q}/{report.n_questions}", failed=len(report.failures), refresh=False)

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.close()
        self.report.seconds = time.perf_counter() - self.started


def run_jobs(
    selector: FrameSelector,
    benchmark: Benchmark,
    jobs: Sequence[VideoJob],
    video_root: str | Path,
    writer: IndexWriter,
    *,
    num_frames: int = 64,
    strategy: str = "topk",
    skip_ids: set[str] | None = None,
    progress: bool | None = None,
    desc: str = "precompute",
    on_record: Callable[[IndexRecord], None] | None = None,
) -> PrecomputeReport:
    """Select frames for every question of ``jobs``; each video is encoded once.

    A video that cannot be read fails all its questions; any other error in ``select_many``
    is isolated by retrying its questions one by one (features come from the selector's cache).
    """
    with JobProgress(jobs, writer, skip_ids, progress, desc) as progress_:
        for job in jobs:
            todo = progress_.todo(job)
            if todo:
                run_video_job(selector, benchmark, job, todo, video_root, writer, num_frames, strategy,
                              progress_.report, on_record)
            progress_.advance()
    return progress_.report


def run_video_job(selector, benchmark, job, todo, video_root, writer, num_frames, strategy, report, on_record) -> None:
    path = benchmark.resolve_video(todo[0], video_root)
    try:
        if not Path(path).is_file():
            raise VideoError(path, "file not found")
        results = selector.select_many(str(path), [q.question for q in todo], num_frames=num_frames,
                                       strategy=strategy)
        report.encodes += 1
        pairs = list(zip(todo, results))
    except VideoError as exc:
        fail_questions(report, todo, job.video, str(exc))
        return
    except _DECODE_ERRORS as exc:
        logger.debug("{}: select_many failed ({!r}); retrying question by question", job.video, exc)
        pairs = []
        for q in todo:
            try:
                pairs.append((q, selector.select(str(path), q.question, num_frames=num_frames, strategy=strategy)))
            except _DECODE_ERRORS as one:
                fail_questions(report, [q], job.video, f"{type(one).__name__}: {one}" if not isinstance(
                    one, TspoEvalError) else str(one))
    for q, result in pairs:
        record = IndexRecord.from_selection(result, benchmark=benchmark.name, question_id=q.question_id,
                                            video=job.video, num_frames=num_frames)
        if writer.write(record):
            report.written += 1
            if on_record is not None:
                on_record(record)


def fail_questions(report: PrecomputeReport, questions, video: str, reason: str) -> None:
    logger.warning("{}: {} question(s) failed: {}", video, len(questions), reason)
    report.failures.extend(Failure(q.question_id, video, reason) for q in questions)
