"""Batch frame-index precomputation for a whole benchmark.

Questions are grouped by video so each video is decoded and CLIP-encoded once
(:meth:`FrameSelector.select_many`); one :class:`IndexRecord` line per question is appended to
the output (resumable: ids already in the file are skipped, a crash loses at most one line).
Failures (missing or corrupt video, a bad question) go to ``<out>.failures.jsonl`` with reasons.

Order is canonical (videos sorted by name, questions by natural question-id order) and records
hold no run-specific values, so two runs (or one run on N ranks) give byte-identical files.

Under ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE > 1``) rank ``k`` takes every
``WORLD_SIZE``-th video, writes ``<out>.rank<k>.jsonl``, and after a barrier rank 0 merges all
rank files (and any existing ``<out>``) into ``<out>`` in canonical order.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from tspo_eval.atomic_files import atomic_write
from tspo_eval.distributed import DistContext, ProcessGroup
from tspo_eval.errors import InputError
from tspo_eval.frame_index_cache.index_store import (
    IndexWriter,
    _natural_key,
    iter_index_jsonl,
    merge_index_files,
    record_sort_key,
    write_index,
)
from tspo_eval.precompute_jobs import (  # noqa: F401 - the per-video step, part of this module's API
    Failure,
    PrecomputeReport,
    VideoJob,
    fail_questions,
    plan_jobs,
    run_jobs,
    run_video_job,
)
from tspo_eval.selector_options import SelectorOptions

if TYPE_CHECKING:  # pragma: no cover
    from tspo_eval.selection import FrameSelector

# ---- paths ------------------------------------------------------------------------------------------
def rank_path(out: Path, rank: int, suffix: str = ".jsonl") -> Path:
    """``<out>.rank<k>.jsonl`` (or ``.failures.jsonl``) next to ``out``."""
    return out.with_name(f"{out.name}.rank{rank}{suffix}")


def failures_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.failures.jsonl")


def check_compatible(out: Path, strategy: str, scorer: str, agent_fingerprint: str) -> None:
    """Refuse to resume into ``out`` when it was made with other settings (its first record tells)."""
    if not out.is_file() or out.stat().st_size == 0:
        return
    first = next(iter_index_jsonl(out), None)
    if first is None:
        return
    mine = (strategy, scorer, agent_fingerprint)
    theirs = (first.strategy, first.scorer, first.agent_fingerprint)
    if mine != theirs:
        raise InputError(
            f"{out} holds indices made with strategy/scorer/agent {theirs}, not {mine}; "
            "choose another --out or pass --overwrite")


# ---- files ------------------------------------------------------------------------------------------
def write_failures(path: Path, failures: Sequence[Failure]) -> None:
    """Failures sorted by (video, question id), written atomically; the file is removed when empty."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    ordered = sorted(failures, key=lambda f: (f.video, _natural_key(f.question_id), f.question_id))
    atomic_write(path, "".join(f.to_json() + "\n" for f in ordered))


def read_failures(path: Path) -> list[Failure]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Failure(r["question_id"], r["video"], r["reason"]) for r in rows]


def canonicalize(out: Path) -> None:
    """Rewrite ``out`` in canonical order when it is not (e.g. after a resumed run retried a failure)."""
    records = list(iter_index_jsonl(out)) if out.is_file() else []
    keys = [record_sort_key(r) for r in records]
    if keys != sorted(keys):
        write_index(out, sorted(records, key=record_sort_key))


# ---- the whole command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrecomputeOptions:
    """One precomputation: the benchmark's questions, where they go, and how frames are selected.

    ``selector``: the :class:`~tspo_eval.selector_options.SelectorOptions` (its ``device`` defaults
    to ``cuda:<LOCAL_RANK>`` under torchrun / accelerate). ``limit``: only the first N questions
    (sorted by video, id). ``overwrite``: start afresh instead of resuming into ``out``.
    ``selector.workers``: processes that decode candidates (per rank; None: the usable cores
    bounded by RAM, :func:`tspo_eval.candidate_pool.default_workers`; 1: all in this process).
    """

    benchmark: str
    annotations: Path
    video_root: Path
    out: Path
    selector: SelectorOptions = field(default_factory=SelectorOptions)
    limit: int | None = None
    overwrite: bool = False
    progress: bool | None = None


def precompute(options: PrecomputeOptions, selector: FrameSelector | None = None,
               ctx: DistContext | None = None) -> PrecomputeReport:
    """Run the precomputation (this rank's share when distributed) and merge on rank 0.

    ``selector`` overrides the one built from ``options`` (tests, benchmarks). Returns this
    rank's report with ``total_failed`` summed over all ranks.
    """
    from tspo_eval.benchmarks import get_benchmark, resolve_strategy

    ctx = ctx or DistContext.from_env()
    benchmark = get_benchmark(options.benchmark)
    selection = options.selector
    strategy = resolve_strategy(selection.strategy, benchmark.name)
    out = Path(options.out)
    jobs = plan_jobs(benchmark.load(options.annotations), options.limit)
    mine = ctx.shard(jobs)
    with ProcessGroup(ctx) as group:
        if options.overwrite and ctx.is_main:
            for stale in [out, failures_path(out), *out.parent.glob(f"{out.name}.rank*.jsonl")]:
                stale.unlink(missing_ok=True)
        group.barrier()
        if selector is None:
            from tspo_eval.selection import FrameSelector

            selector = FrameSelector.build(selection.with_(device=selection.device or ctx.default_device()))
        check_compatible(out, strategy, selector.scorer.name, selector.scorer.fingerprint)
        target = rank_path(out, ctx.rank) if ctx.is_distributed else out
        skip = {r.question_id for r in iter_index_jsonl(out)} if ctx.is_distributed and out.is_file() else set()
        desc = f"precompute[{ctx.rank}/{ctx.world_size}]" if ctx.is_distributed else "precompute"
        from tspo_eval.precompute_parallel import resolve_workers, run_jobs_parallel

        workers = resolve_workers(selection.workers, len(mine))
        with IndexWriter(target) as writer:
            if workers > 1:
                report = run_jobs_parallel(selector, benchmark, mine, options.video_root, writer, workers=workers,
                                           num_frames=selection.num_frames, strategy=strategy, skip_ids=skip,
                                           progress=options.progress, desc=desc)
            else:
                report = run_jobs(selector, benchmark, mine, options.video_root, writer,
                                  num_frames=selection.num_frames, strategy=strategy, skip_ids=skip,
                                  progress=options.progress, desc=desc)
        fail_file = rank_path(out, ctx.rank, ".failures.jsonl") if ctx.is_distributed else failures_path(out)
        write_failures(fail_file, report.failures)
        report.total_failed = group.sum(len(report.failures))  # every rank has finished writing here
        if ctx.is_main:
            if ctx.is_distributed:
                _merge_ranks(out, ctx.world_size)
            canonicalize(out)
        group.barrier()
    if ctx.is_distributed:  # each rank's share; the whole run is reported by the caller (the CLI prints it once)
        logger.info("{}: {}", desc, report.summary())
    return report


def _merge_ranks(out: Path, world_size: int) -> None:
    """Rank 0: fold every ``<out>.rank*.jsonl`` into ``out`` and the current ranks' failures into one file."""
    parts = sorted(out.parent.glob(f"{out.name}.rank*.jsonl"))
    parts = [p for p in parts if not p.name.endswith(".failures.jsonl")]
    n = merge_index_files(parts, out)
    failures: list[Failure] = []
    for k in range(world_size):
        failures.extend(read_failures(rank_path(out, k, ".failures.jsonl")))
    write_failures(failures_path(out), failures)
    for p in parts + list(out.parent.glob(f"{out.name}.rank*.failures.jsonl")):
        p.unlink(missing_ok=True)
    logger.info("merged {} rank files into {} ({} records)", len(parts), out, n)


def summarize_failures(failures: Sequence[Failure], limit: int = 10) -> str:
    """Failures grouped by reason, the most common first (for the end-of-run message)."""
    by_reason: dict[str, list[Failure]] = {}
    for f in failures:
        by_reason.setdefault(f.reason, []).append(f)
    lines = []
    for reason, group in sorted(by_reason.items(), key=lambda kv: -len(kv[1]))[:limit]:
        videos = sorted({f.video for f in group})
        lines.append(f"  {len(group)} question(s) in {len(videos)} video(s): {reason}")
    if len(by_reason) > limit:
        lines.append(f"  ... and {len(by_reason) - limit} other reasons")
    return "\n".join(lines)
