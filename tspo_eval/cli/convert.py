"""``tspo-eval convert BENCH ANNOTATIONS --to json|vlmevalkit -o OUT``."""
from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from tspo_eval.atomic_files import atomic_write
from tspo_eval.benchmarks import BENCHMARK_NAMES, QuestionRecord, get_benchmark
from tspo_eval.benchmarks.vlmevalkit_tsv import build_vlmevalkit_tsv

FORMATS = ("json", "vlmevalkit")


def records_json(records: Sequence[QuestionRecord], jsonl: bool = False) -> str:
    """Our normalised records, one per question: a JSON list (or JSON lines when ``jsonl``)."""
    dicts = [r.to_dict() for r in records]
    if jsonl:
        return "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dicts)
    return json.dumps(dicts, ensure_ascii=False, indent=1) + "\n"


def count_tsv_rows(text: str) -> int:
    """Data rows of a TSV text (header excluded), read as a TSV reader reads them: a quoted cell
    may hold newlines, so counting lines would overcount (Video-MME: 2998 lines, 2700 rows)."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter="\t") if row]
    return max(0, len(rows) - 1)


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Convert a benchmark's original annotation file to our normalised JSON records "
                          "(one per question; .jsonl output gives JSON lines) or to the TSV VLMEvalKit builds "
                          "(byte-identical for LongVideoBench and Video-MME).")
    parser.add_argument("benchmark", choices=BENCHMARK_NAMES, metavar="BENCH", help=", ".join(BENCHMARK_NAMES))
    parser.add_argument("annotations", type=Path, help="original annotation file (e.g. lvb_val.json)")
    parser.add_argument("--to", dest="fmt", choices=FORMATS, default="json", help="output format (default: json)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file (written atomically; .jsonl gives JSON lines)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.fmt == "vlmevalkit":
        text = build_vlmevalkit_tsv(args.benchmark, args.annotations)
        n = count_tsv_rows(text)
    else:
        records = get_benchmark(args.benchmark).load(args.annotations)
        text = records_json(records, jsonl=args.output.suffix.lower() == ".jsonl")
        n = len(records)
    atomic_write(args.output, text)
    print(f"{args.output}: {n} questions ({args.fmt})")
    return 0
