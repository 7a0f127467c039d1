"""``tspo-eval select VIDEO --question TEXT``: pick the frames of one video for one question."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tspo_eval.errors import InputError
from tspo_eval.selector_options import SelectorOptions, add_selector_arguments

DESCRIPTION = """\
Pick the K frames of one video that best answer one question, with the TSPO temporal agent
(or plain CLIP similarity), and print them as a table (or JSON). Candidates are the frames of a
1 fps grid; answer options in the question text are cut off before scoring.

example:
  tspo-eval select talk.mp4 -q "What does the speaker hold up?" -k 16 --contact-sheet sheet.png
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``select`` arguments to ``parser``."""
    parser.description = DESCRIPTION
    parser.add_argument("video", help="video file")
    parser.add_argument("--question", "-q", required=True, help="question text (options are cut off)")
    add_selector_arguments(parser, strategy_default="topk")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--contact-sheet", metavar="PNG", default=None, help="write the chosen frames with their times")
    parser.add_argument("--plot", metavar="PNG", default=None, help="write the score timeline with the chosen frames marked")
    parser.set_defaults(func=run)


def _check_options(args: argparse.Namespace) -> None:
    """Fail fast (before loading any model) on options that cannot work; keeps the validated options."""
    from tspo_eval.agent.text import question_stem

    args.selector_options = SelectorOptions.from_args(args)
    if not args.question or not args.question.strip():
        raise InputError("empty question: pass the question text with --question")
    question_stem(args.question)  # a question made only of options fails here, before any model loads


def _check_outputs(args: argparse.Namespace) -> None:
    """The folders of the requested PNG files must exist (checked before any work)."""
    for option, value in (("--contact-sheet", args.contact_sheet), ("--plot", args.plot)):
        if value and not Path(value).expanduser().resolve().parent.is_dir():
            raise InputError(f"{option} {value}: folder {Path(value).parent} does not exist")


def _print_table(result, file=None) -> None:
    from tspo_eval.visualize import format_time

    file = file or sys.stdout  # looked up per call: a default bound at import goes stale under redirection

    print(
        f"{result.video}: {len(result.frame_indices)} of {result.num_candidates} candidates "
        f"({result.fps:g} fps grid, video {result.avg_fps:.3f} fps, {result.n_frames} frames), "
        f"strategy {result.strategy}, scorer {result.scorer}"
        + (", features from cache" if result.feature_cache_hit else ""),
        file=file,
    )
    print(f"{'#':>4}  {'frame':>8}  {'time':>10}  {'score':>9}", file=file)
    for rank, (pos, frame, time) in enumerate(zip(result.selected_positions, result.frame_indices, result.timestamps), 1):
        score = f"{result.scores[pos]:9.4f}" if result.scores else f"{'-':>9}"
        print(f"{rank:>4}  {frame:>8}  {format_time(time):>10}  {score}", file=file)


def run(args: argparse.Namespace) -> int:
    """Select, then print (table or JSON) and optionally draw the contact sheet and the plot."""
    _check_options(args)
    _check_outputs(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Probe the video, build the selector (model + cache), select, report."""
    from tspo_eval.benchmarks import resolve_strategy
    from tspo_eval.selection import FrameSelector
    from tspo_eval.video import open_video

    with open_video(args.video, args.selector_options.decoder):  # a bad video fails here, before any model is loaded
        pass

    options = args.selector_options
    selector = FrameSelector.build(options)
    result = selector.select(args.video, args.question, num_frames=options.num_frames,
                             strategy=resolve_strategy(options.strategy, None))
    title = f"{args.video} | {' '.join(args.question.split())}"  # visualize wraps it and ends a cut with "…"
    if args.contact_sheet:
        from tspo_eval.video import decode_frames
        from tspo_eval.visualize import contact_sheet

        frames = decode_frames(args.video, result.frame_indices, decoder=args.selector_options.decoder)
        contact_sheet(frames, result.timestamps, args.contact_sheet, title=title)
    if args.plot:
        from tspo_eval.video import uniform_frame_indices
        from tspo_eval.visualize import score_timeline

        times = result.candidate_timestamps  # presentation times (true times for variable frame rates)
        label = "TSPO logit S/tau" if result.scorer == "tspo" else "CLIP cosine"
        # what uniform sampling of the same grid with the same budget would take (the baseline)
        uniform = uniform_frame_indices(result.num_candidates, len(result.selected_positions))
        score_timeline(times, result.scores, result.selected_positions, args.plot,
                       title=title, score_label=label, uniform_positions=uniform.tolist())
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        _print_table(result)
    return 0
