"""``tspo-eval leaderboard``: compare runs against uniform sampling, or score selections on time spans.

Two modes::

    tspo-eval leaderboard [NAME=]RUN [...] [--baseline NAME] [--annotations BENCH=FILE ...]
                          [--run-info NAME KEY=VALUE[,KEY=VALUE]] [--published] [--out DIR]
                          [--bootstrap N] [--seed S] [--confidence C] [--no-chart]
    tspo-eval leaderboard --selection-only [NAME=]INDEX [...] --annotations BENCH=FILE [...]
                          [--tolerance SECONDS] [--out DIR] [--bootstrap N] [--seed S]

RUN: an lmms-eval output folder (or one ``*_results.json`` / ``*_samples_<task>.jsonl``), a
VLMEvalKit output folder or per-question table, or a ``tspo-eval score --json --per-question`` file.
INDEX: a frame-index file (ours or TSPO's ``*_frameIdx.json``) or a folder holding
``tspo_frames_*.jsonl`` files.  See docs/leaderboard.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tspo_eval.errors import InputError

_INFO_KEYS = {"model": "model", "frame_source": "frame_source", "source": "frame_source",
              "num_frames": "num_frames", "frames": "num_frames", "k": "num_frames", "benchmark": "benchmark"}


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Paired comparison of runs against the uniform baseline of the same model and frame "
                          "budget (bootstrap CI, exact McNemar), per benchmark and breakdown; or, with "
                          "--selection-only, how often chosen frames hit ground-truth time spans.")
    parser.add_argument("sources", nargs="+", metavar="[NAME=]PATH",
                        help="runs (or, with --selection-only, frame-index files / folders); NAME labels it")
    parser.add_argument("--selection-only", action="store_true",
                        help="score frame-index files against ground-truth time spans (no MLLM)")
    parser.add_argument("--baseline", metavar="NAME",
                        help="compare every run with the run named NAME (default: the uniform run of the "
                             "same model and frame budget)")
    parser.add_argument("--annotations", action="append", default=[], metavar="BENCH=FILE",
                        help="a benchmark's annotation file: categories for breakdowns, ids for VLMEvalKit "
                             "'index' rows, re-scoring of prediction tables, time spans (repeatable)")
    parser.add_argument("--run-info", action="append", nargs=2, default=[], metavar=("NAME", "KEY=VALUE,..."),
                        help="override a named run's label: model, frame_source, num_frames, benchmark")
    parser.add_argument("--published", action="store_true",
                        help="add the TSPO paper's Table 1 numbers as separate, labelled reference rows")
    parser.add_argument("--out", type=Path, default=Path("leaderboard"), help="output folder (default ./leaderboard)")
    parser.add_argument("--bootstrap", type=int, default=10000, metavar="N", help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--tolerance", type=float, default=0.0, metavar="SECONDS",
                        help="--selection-only: widen every span by this much on both sides (default 0)")
    parser.add_argument("--no-chart", action="store_true", help="do not draw leaderboard.png")
    parser.set_defaults(func=run)


def load_annotations(specs: list[str]) -> dict[str, list[Any]]:
    """``["lvbench=/path/video_info.meta.jsonl", ...]`` -> benchmark -> question records."""
    from tspo_eval.benchmarks import get_benchmark

    out: dict[str, list[Any]] = {}
    for spec in specs:
        bench, sep, path = spec.partition("=")
        if not sep or not bench or not path:
            raise InputError(f"--annotations expects BENCH=FILE, got {spec!r}")
        out[get_benchmark(bench).name] = get_benchmark(bench).load(path)
    return out


def apply_run_info(runs: list[Any], infos: list[list[str]]) -> None:
    """Apply ``--run-info NAME KEY=VALUE,...`` to the runs named NAME on the command line."""
    for name, assignments in infos:
        targets = [r for r in runs if r.named and r.name == name]
        if not targets:
            raise InputError(f"--run-info {name}: no run given as {name}=PATH")
        for item in assignments.split(","):
            key, sep, value = item.partition("=")
            attr = _INFO_KEYS.get(key.strip().lower())
            if not sep or attr is None:
                raise InputError(f"--run-info {name}: expected KEY=VALUE with KEY in "
                                 f"{', '.join(sorted(set(_INFO_KEYS)))}, got {item!r}")
            value = value.strip()
            if attr == "num_frames":
                if not value.isdigit():
                    raise InputError(f"--run-info {name}: num_frames must be a positive integer, got {value!r}")
                value = int(value)
            for run in targets:
                setattr(run, attr, value)


def _run_selection_only(args: argparse.Namespace, annotations: dict[str, list[Any]]) -> int:
    from tspo_eval.leaderboard.span_hits import build_span_board
    from tspo_eval.leaderboard.span_tables import span_markdown, write_span_outputs

    board = build_span_board(args.sources, annotations, args.bootstrap, args.seed, args.confidence, args.tolerance)
    paths = write_span_outputs(board, args.out)
    print(span_markdown(board))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from tspo_eval.leaderboard.board import build_leaderboard
    from tspo_eval.leaderboard.published import published_results
    from tspo_eval.leaderboard.runs import assign_names, load_runs
    from tspo_eval.leaderboard.tables import to_markdown, write_outputs

    if args.bootstrap < 1:
        raise InputError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must be in (0, 1), got {args.confidence}")
    annotations = load_annotations(args.annotations)
    if args.selection_only:
        if args.baseline or args.published or args.run_info:
            raise InputError("--baseline, --published and --run-info do not apply to --selection-only")
        return _run_selection_only(args, annotations)
    runs = [r for spec in args.sources for r in load_runs(spec, annotations)]
    apply_run_info(runs, args.run_info)
    assign_names(runs)
    board = build_leaderboard(runs, baseline=args.baseline, n_boot=args.bootstrap, seed=args.seed,
                              confidence=args.confidence, annotations=annotations, progress=sys.stderr.isatty())
    published = published_results(board.benchmarks) if args.published else []
    paths = write_outputs(board, args.out, published, chart=not args.no_chart)
    print(to_markdown(board, published, breakdowns=False))
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
