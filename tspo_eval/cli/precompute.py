"""``tspo-eval precompute BENCH ANNOTATIONS --videos ROOT --out INDEX.jsonl``: frame indices for a benchmark.

Resumable (re-run the same command), deterministic, one decode + encode per video. Under
``accelerate launch`` / ``torchrun`` every rank takes a share of the videos and rank 0 merges.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tspo_eval.selector_options import SelectorOptions, add_selector_arguments

DESCRIPTION = """\
Precompute the frame indices of every question of a benchmark into one JSONL index file (one
record per question), for lmms-eval / VLMEvalKit runs with frame_selection=index. Each video is
decoded and CLIP-encoded once; re-running the same command resumes; failures (missing or broken
videos) are listed in <out>.failures.jsonl. Under accelerate launch / torchrun every rank takes a
share of the videos and rank 0 merges.

example:
  tspo-eval precompute mlvu mlvu.json --videos /data/MLVU --out mlvu_tspo.jsonl
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``precompute`` arguments to ``parser``."""
    parser.description = DESCRIPTION
    parser.add_argument("benchmark", help="benchmark name: longvideobench, mlvu, videomme, lvbench, synthetic")
    parser.add_argument("annotations", type=Path, help="the benchmark's original annotation file")
    parser.add_argument("--videos", type=Path, required=True, help="video root folder")
    parser.add_argument("--out", type=Path, required=True, help="output index file (JSONL)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions (sorted by video, id)")
    add_selector_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming into --out")
    parser.add_argument("--allow-failures", action="store_true", help="exit 0 even when some questions failed")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show the progress bar even when stderr is not a terminal (default: on a terminal only)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="never show the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the precomputation; print one summary line (and the failures) on the main rank."""
    from loguru import logger

    from tspo_eval.distributed import DistContext
    from tspo_eval.frame_index_cache.index_store import iter_index_jsonl
    from tspo_eval.precompute import (
        PrecomputeOptions,
        failures_path,
        precompute,
        read_failures,
        summarize_failures,
    )

    ctx = DistContext.from_env()
    options = PrecomputeOptions(
        benchmark=args.benchmark, annotations=args.annotations, video_root=args.videos, out=args.out,
        selector=SelectorOptions.from_args(args), limit=args.limit, overwrite=args.overwrite, progress=args.progress,
    )
    report = precompute(options, ctx=ctx)
    if ctx.is_main:
        if ctx.is_distributed:  # this rank's report is its share only: describe the merged file
            n_records = sum(1 for _ in iter_index_jsonl(args.out)) if args.out.is_file() else 0
            print(f"{args.out}: {n_records} records after merging {ctx.world_size} ranks, "
                  f"{report.total_failed} question(s) failed")
        else:
            print(f"{args.out}: {report.summary()}")
        if report.total_failed:
            failures = read_failures(failures_path(args.out))
            print(f"{report.total_failed} question(s) failed; reasons in {failures_path(args.out)}:")
            print(summarize_failures(failures))
    if report.total_failed and not args.allow_failures:
        logger.debug("failures and no --allow-failures: exit status 1")
        return 1
    return 0
