"""Scoring predictions by a benchmark's official rule, with its breakdowns.

Overall accuracy = correct / all questions of the annotation (a question without a prediction
is wrong and counted in ``missing``). Each breakdown (e.g. Video-MME ``duration``) reports the
accuracy over the questions listing a value; a question counts under every value it lists
(LVBench ``question_type``). MLVU also reports ``pooled`` (= overall) and ``macro`` (the mean of
the per-``task_type`` accuracies, what lmms-eval's ``mlvu_dev`` reports).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tspo_eval.benchmarks.answers import ANSWER_RULES, extract_answer
from tspo_eval.benchmarks.base import Benchmark
from tspo_eval.benchmarks.records import QuestionRecord
from tspo_eval.benchmarks.registry import get_benchmark
from tspo_eval.errors import InputError


def _pct(correct: int, n: int) -> float:
    return round(100.0 * correct / n, 4) if n else 0.0


@dataclass
class ScoreReport:
    """Scores of one predictions set; percentages in 0..100."""

    benchmark: str
    rule: str
    n: int
    correct: int
    unparsed: int                     # predictions with no valid letter (wrong unless rule="random")
    missing: list[str]                # question ids without a prediction (wrong)
    per_question: dict[str, bool]
    parsed: dict[str, str | None]     # question id -> extracted letter (None: unparsed / missing)
    breakdowns: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)
    macro_breakdown: str | None = None

    @property
    def overall(self) -> float:
        return _pct(self.correct, self.n)

    @property
    def macro(self) -> float | None:
        """Unweighted mean of the ``macro_breakdown`` accuracies (MLVU), else None."""
        if not self.macro_breakdown or not self.breakdowns.get(self.macro_breakdown):
            return None
        values = [v["accuracy"] for v in self.breakdowns[self.macro_breakdown].values()]
        return round(sum(values) / len(values), 4)

    def to_dict(self, per_question: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "benchmark": self.benchmark, "rule": self.rule, "overall": self.overall, "n": self.n,
            "correct": self.correct, "unparsed": self.unparsed, "missing": len(self.missing),
            "missing_ids": list(self.missing), "breakdowns": self.breakdowns,
        }
        if self.macro_breakdown:
            data["pooled"] = self.overall
            data["macro"] = self.macro
        if per_question:
            data["per_question"] = dict(self.per_question)
        return data

    def to_table(self) -> str:
        """Plain-text table: overall, then one block per breakdown."""
        lines = [f"{self.benchmark}  (answer rule: {self.rule})",
                 f"{'overall':<32}{self.overall:>8.2f}%  n={self.n}",
                 f"{'unparsed answers':<32}{self.unparsed:>8d}",
                 f"{'missing predictions':<32}{len(self.missing):>8d}"]
        if self.macro_breakdown:
            lines.append(f"{'pooled (correct/total)':<32}{self.overall:>8.2f}%")
            lines.append(f"{'macro (mean over ' + self.macro_breakdown + ')':<32}{self.macro or 0.0:>8.2f}%")
        for name, values in self.breakdowns.items():
            lines.append(f"-- {name}")
            for value, stats in values.items():
                lines.append(f"  {value:<30}{stats['accuracy']:>8.2f}%  n={stats['n']}")
        return "\n".join(lines)


def score_predictions(benchmark: str | Benchmark, records: Sequence[QuestionRecord],
                      predictions: Mapping[str, str | None], rule: str = "first-letter",
                      seed: int = 0) -> ScoreReport:
    """Score ``predictions`` ({question id: raw text}) against ``records``.

    Raises InputError when predictions name question ids the annotation does not have (lists
    a few) or when ``records`` is empty. With ``rule="random"`` an unparsed answer becomes a
    random letter seeded by ``(seed, question id)`` (reproducible, order-independent).
    """
    bench = get_benchmark(benchmark)
    if rule not in ANSWER_RULES:
        raise InputError(f"unknown answer rule {rule!r}; choose one of: {', '.join(ANSWER_RULES)}")
    if not records:
        raise InputError(f"{bench.name}: no questions to score")
    known = {r.question_id for r in records}
    unknown = [qid for qid in predictions if qid not in known]
    if unknown:
        raise InputError(f"{len(unknown)} prediction(s) for question ids not in the {bench.name} annotation: "
                         f"{', '.join(map(repr, unknown[:5]))}{' ...' if len(unknown) > 5 else ''}")
    per_question: dict[str, bool] = {}
    parsed: dict[str, str | None] = {}
    missing: list[str] = []
    unparsed = 0
    tallies: dict[str, dict[str, list[int]]] = {name: defaultdict(lambda: [0, 0]) for name in bench.breakdowns}
    for record in records:
        qid = record.question_id
        if qid not in predictions or predictions[qid] is None:
            missing.append(qid)
            letter = None
        else:
            letter = extract_answer(predictions[qid], len(record.options), rule="first-letter")
            if letter is None:
                unparsed += 1
                if rule == "random":
                    letter = extract_answer("", len(record.options), rule="random", seed=f"{seed}:{qid}")
        ok = letter == record.answer
        per_question[qid] = ok
        parsed[qid] = letter
        for name in bench.breakdowns:
            for value in record.categories.get(name, []):
                tallies[name][value][0] += int(ok)
                tallies[name][value][1] += 1
    breakdowns = _finish(tallies)
    return ScoreReport(benchmark=bench.name, rule=rule, n=len(records), correct=sum(per_question.values()),
                       unparsed=unparsed, missing=missing, per_question=per_question, parsed=parsed,
                       breakdowns=breakdowns, macro_breakdown=bench.macro_breakdown)


def report_from_outcomes(benchmark: str | Benchmark, outcomes: Sequence[Mapping[str, Any]],
                         rule: str = "first-letter") -> ScoreReport:
    """A ScoreReport from per-question outcome dicts (the lmms-eval ``tspo_*`` per-sample metric
    dicts): ``question_id``, ``pred`` (letter or None), ``correct``, ``unparsed`` (optional) and
    the benchmark's breakdown fields (a string or a list of strings). ``missing`` stays empty:
    every outcome is an answered (possibly failed) question."""
    bench = get_benchmark(benchmark)
    per_question: dict[str, bool] = {}
    parsed: dict[str, str | None] = {}
    missing: list[str] = []
    unparsed = 0
    tallies: dict[str, dict[str, list[int]]] = {name: defaultdict(lambda: [0, 0]) for name in bench.breakdowns}
    for outcome in outcomes:
        qid = str(outcome["question_id"])
        ok = bool(outcome.get("correct"))
        per_question[qid] = ok
        parsed[qid] = outcome.get("pred")
        unparsed += int(bool(outcome.get("unparsed")))
        for name in bench.breakdowns:
            values = outcome.get(name)
            for value in ([values] if isinstance(values, str) else values or []):
                tallies[name][str(value)][0] += int(ok)
                tallies[name][str(value)][1] += 1
    return ScoreReport(benchmark=bench.name, rule=rule, n=len(per_question), correct=sum(per_question.values()),
                       unparsed=unparsed, missing=missing, per_question=per_question, parsed=parsed,
                       breakdowns=_finish(tallies), macro_breakdown=bench.macro_breakdown)


def _finish(tallies: dict[str, dict[str, list[int]]]) -> dict[str, dict[str, dict[str, float | int]]]:
    return {
        name: {value: {"accuracy": _pct(c, n), "correct": c, "n": n}
               for value, (c, n) in sorted(values.items(), key=lambda kv: _sort_key(kv[0]))}
        for name, values in tallies.items()
    }


def _sort_key(value: str) -> tuple[int, float, str]:
    """Numeric values (LongVideoBench duration groups) in numeric order, then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)
