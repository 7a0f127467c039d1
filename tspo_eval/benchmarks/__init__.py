"""Benchmarks behind one interface: load annotations, resolve videos, export, score.

``get_benchmark(name)`` returns a :class:`Benchmark` ("longvideobench", "mlvu", "videomme",
"lvbench", "synthetic"); ``Benchmark.load(path)`` gives :class:`QuestionRecord` objects;
``load_predictions`` + ``score_predictions`` score a run by the benchmark's official rule.
"""
from tspo_eval.benchmarks.answers import ANSWER_RULES, extract_answer
from tspo_eval.benchmarks.base import Benchmark
from tspo_eval.benchmarks.predictions import load_predictions
from tspo_eval.benchmarks.records import LETTERS, QuestionRecord
from tspo_eval.benchmarks.registry import (
    BENCHMARK_NAMES,
    benchmark_name_for,
    find_benchmark,
    get_benchmark,
    resolve_strategy,
)
from tspo_eval.benchmarks.scoring import ScoreReport, score_predictions

__all__ = [
    "ANSWER_RULES",
    "BENCHMARK_NAMES",
    "Benchmark",
    "LETTERS",
    "QuestionRecord",
    "ScoreReport",
    "benchmark_name_for",
    "extract_answer",
    "find_benchmark",
    "get_benchmark",
    "load_predictions",
    "resolve_strategy",
    "score_predictions",
]
