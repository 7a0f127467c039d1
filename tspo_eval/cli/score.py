"""``tspo-eval score BENCH ANNOTATIONS PREDICTIONS [--json] [--answer-rule R] [--seed N]``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tspo_eval.benchmarks import (
    ANSWER_RULES,
    BENCHMARK_NAMES,
    get_benchmark,
    load_predictions,
    score_predictions,
)


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Score predictions (lmms-eval samples .jsonl, VLMEvalKit .xlsx/.tsv, or JSONL of "
                          '{"qid", "prediction"}) by the benchmark\'s official rule, with its breakdowns.')
    parser.add_argument("benchmark", choices=BENCHMARK_NAMES, metavar="BENCH", help=", ".join(BENCHMARK_NAMES))
    parser.add_argument("annotations", type=Path, help="original annotation file")
    parser.add_argument("predictions", type=Path, help="predictions file")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    parser.add_argument("--per-question", action="store_true", help="include per-question correctness in --json")
    parser.add_argument("--answer-rule", choices=ANSWER_RULES, default="first-letter",
                        help="first-letter: unparsed answers are wrong (default); random: seeded random letter")
    parser.add_argument("--seed", type=int, default=0, help="seed of --answer-rule random (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bench = get_benchmark(args.benchmark)
    records = bench.load(args.annotations)
    predictions = load_predictions(args.predictions, records=records)
    report = score_predictions(bench, records, predictions, rule=args.answer_rule, seed=args.seed)
    if args.json:
        print(json.dumps(report.to_dict(per_question=args.per_question), indent=1))
    else:
        print(report.to_table())
    return 0
