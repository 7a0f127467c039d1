"""``precompute --workers N``: the per-video loop of :mod:`tspo_eval.precompute` with the decoding
and CLIP preprocessing of the candidates in N worker processes (:mod:`tspo_eval.candidate_pool`).

Every video's features come out byte-identical to the single-process loop and go through
:meth:`FrameSelector.adopt_candidates` (feature cache + memory) before the same per-video step
(:func:`tspo_eval.precompute_jobs.run_video_job`) selects and writes its records, so records, failures
and cache entries do not depend on N.  Records are written in completion order; ``precompute``
canonicalises the file at the end (as it does after a resumed run).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tspo_eval.candidate_pool import CandidatePool, default_workers
from tspo_eval.errors import InputError
from tspo_eval.precompute_jobs import (
    JobProgress,
    PrecomputeReport,
    VideoJob,
    fail_questions,
    run_video_job,
)

if TYPE_CHECKING:  # pragma: no cover
    from tspo_eval.benchmarks import Benchmark
    from tspo_eval.frame_index_cache.index_store import IndexRecord, IndexWriter
    from tspo_eval.selection import FrameSelector


def resolve_workers(workers: int | None, n_videos: int) -> int:
    """``workers`` (None: :func:`default_workers` for this node's ranks); 1 when there is nothing to do.

    More workers than videos is fine: the pool splits videos into segments decoded side by side
    (:meth:`tspo_eval.candidate_pool.CandidatePool.segments_for`) and starts no idle worker.

    Raises:
        InputError: ``workers`` below 1.
    """
    if workers is None:
        ranks_on_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        workers = default_workers(ranks_on_node)
    elif isinstance(workers, bool) or int(workers) < 1:
        raise InputError(f"--workers must be a positive integer, got {workers!r}")
    return max(1, int(workers)) if n_videos > 0 else 1


def run_jobs_parallel(
    selector: FrameSelector,
    benchmark: Benchmark,
    jobs: Sequence[VideoJob],
    video_root: str | Path,
    writer: IndexWriter,
    *,
    workers: int,
    num_frames: int = 64,
    strategy: str = "topk",
    skip_ids: set[str] | None = None,
    progress: bool | None = None,
    desc: str = "precompute",
    on_record: Callable[[IndexRecord], None] | None = None,
    pool_factory: Callable[[FrameSelector, int], CandidatePool] | None = None,
) -> PrecomputeReport:
    """As :func:`tspo_eval.precompute_jobs.run_jobs`, with ``workers`` decoding processes.

    ``pool_factory(selector, workers)`` builds the pool (tests inject faults through it).
    """
    with JobProgress(jobs, writer, skip_ids, progress, desc) as progress_:
        report = progress_.report
        todo_of: dict[str, tuple[VideoJob, list]] = {}
        direct: list[tuple[VideoJob, list]] = []  # missing files: the serial step reports them, nothing to decode
        for job in jobs:
            todo = progress_.todo(job)
            if not todo:
                continue
            path = str(benchmark.resolve_video(todo[0], video_root))
            if Path(path).is_file():
                todo_of[path] = (job, todo)
            else:
                direct.append((job, todo))

        def step(job: VideoJob, todo: list) -> None:
            run_video_job(selector, benchmark, job, todo, video_root, writer, num_frames, strategy, report, on_record)

        progress_.advance(len(jobs) - len(todo_of) - len(direct))
        for job, todo in direct:
            step(job, todo)
            progress_.advance()
        with (pool_factory or CandidatePool)(selector, workers) as pool:
            for outcome in pool.run(list(todo_of)):
                job, todo = todo_of[outcome.path]
                if outcome.error is not None:
                    fail_questions(report, todo, job.video, outcome.error)
                else:
                    if not outcome.cached:
                        selector.adopt_candidates(outcome.path, outcome.metadata, outcome.grid, outcome.times,
                                                  outcome.features)
                    step(job, todo)
                progress_.advance()
    return report
