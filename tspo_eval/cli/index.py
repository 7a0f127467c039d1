"""``tspo-eval index import|export|diff``: TSPO's published frame-index files and comparisons.

- ``import SRC.json --out INDEX.jsonl``: a published ``TSPO_*_frameIdx.json`` to our JSONL (rows
  with fewer than 64 indices are kept and flagged; ``--videos`` fills in fps/timestamps).
- ``export INDEX.jsonl --out DST.json [--annotations ANN]``: back to the published format
  (an imported file comes back byte-identical).
- ``diff A B [--benchmark NAME --annotations ANN]``: per-question overlap, mean Jaccard, and the
  fraction of frames inside ground-truth spans when the annotations have them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``import``, ``export`` and ``diff`` under ``parser``."""
    from tspo_eval.cli.parsing import add_command

    parser.description = ("Frame-index files: import TSPO's published *_frameIdx.json into our JSONL, export "
                          "back, or compare two index files question by question.")
    sub = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    imp = add_command(sub, "import", "published TSPO *_frameIdx.json -> index JSONL", description=(
        "Read a published TSPO_{LongVideoBench,MLVU,VideoMME}_frameIdx.json into an index JSONL file. Rows "
        "with fewer than 64 indices are kept and flagged 'fewer-frames'; --videos fills in n_frames, avg_fps "
        "and timestamps from the videos (the published files carry no frame rates)."))
    imp.add_argument("source", type=Path, help="published *_frameIdx.json")
    imp.add_argument("--out", type=Path, required=True, help="index JSONL to write")
    imp.add_argument("--benchmark", default=None, help="longvideobench, mlvu or videomme (default: from the file)")
    imp.add_argument("--videos", type=Path, default=None, help="video root: fill n_frames/avg_fps/timestamps")
    imp.add_argument("--decoder", default="auto", help="video backend for --videos")
    imp.set_defaults(func=run_import)

    exp = add_command(sub, "export", "index JSONL -> published TSPO *_frameIdx.json", description=(
        "Write an index file in TSPO's published *_frameIdx.json format: an imported file comes back "
        "byte-identical; an index made by precompute needs --annotations (the benchmark's original rows)."))
    exp.add_argument("index", type=Path, help="index JSONL (ours) or published JSON")
    exp.add_argument("--out", type=Path, required=True, help="*_frameIdx.json to write")
    exp.add_argument("--annotations", type=Path, default=None,
                     help="the benchmark's original annotation file (needed unless the index was imported)")
    exp.add_argument("--benchmark", default=None, help="benchmark of --annotations (default: from the index)")
    exp.set_defaults(func=run_export)

    diff = add_command(sub, "diff", "compare two index files question by question", description=(
        "Compare two index files on the questions both hold: mean overlap, mean Jaccard, identical "
        "selections and, with annotations that carry time spans (LVBench, synthetic), the fraction of each "
        "side's frames inside a ground-truth span. --per-question writes one JSON row per question with "
        "overlap, jaccard and span_frame_fraction_a/_b."))
    diff.add_argument("a", type=Path, help="first index file")
    diff.add_argument("b", type=Path, help="second index file")
    diff.add_argument("--benchmark", default=None, help="benchmark of --annotations (default: from the index)")
    diff.add_argument("--annotations", type=Path, default=None, help="annotations with time spans (LVBench, synthetic)")
    diff.add_argument("--per-question", type=Path, default=None, help="write per-question rows (JSONL) here")
    diff.add_argument("--json", action="store_true", help="print the summary as JSON")
    diff.set_defaults(func=run_diff)


def run_import(args: argparse.Namespace) -> int:
    from tspo_eval.frame_index_cache.index_store import FLAG_SHORT, write_index
    from tspo_eval.frame_index_cache.published import (
        fill_video_metadata,
        import_published,
    )

    records = import_published(args.source, benchmark=args.benchmark)
    if args.videos is not None:
        for video, reason in fill_video_metadata(records, args.videos, decoder=args.decoder):
            print(f"warning: {video}: {reason}")
    write_index(args.out, records)
    short = sum(FLAG_SHORT in r.flags for r in records)
    print(f"{args.out}: {len(records)} records ({records[0].benchmark if records else '?'}), "
          f"{short} with fewer than 64 frames (flagged '{FLAG_SHORT}')")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tspo_eval.frame_index_cache.index_files import read_index
    from tspo_eval.frame_index_cache.published import export_published

    records = list(read_index(args.index).values())
    n, missing = export_published(records, args.out, annotations=args.annotations, benchmark=args.benchmark)
    print(f"{args.out}: {n} rows" + (f"; {len(missing)} questions without a record/row left out" if missing else ""))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from tspo_eval.errors import InputError
    from tspo_eval.frame_index_cache.index_files import read_index
    from tspo_eval.index_diff import diff_indices, load_spans, write_per_question

    a, b = read_index(args.a), read_index(args.b)
    spans = None
    if args.annotations is not None:
        first = next(iter(a.values()), None)
        bench = args.benchmark or (first.benchmark if first else None)
        if not bench:
            raise InputError("--annotations needs --benchmark (the index files do not name one)")
        spans = load_spans(bench, args.annotations)
    result = diff_indices(a, b, spans)
    if args.per_question is not None:
        write_per_question(result, args.per_question)
    if args.json:
        print(json.dumps(result.to_dict(per_question=False), indent=2))
    else:
        print(result.summary(args.a.name, args.b.name))
    return 0
