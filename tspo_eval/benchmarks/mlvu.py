"""MLVU dev, multiple choice (``mlvu.json`` as lmms-eval hosts it).

Rows: ``question_id`` ("Q0"), ``video_name`` ("needle_32.mp4"), ``duration`` (s), ``question``
(stem followed by "(A) ..." option lines), ``candidates`` (option texts), ``answer`` (letter),
``task_type`` (plotQA, needle, ego, count, order, anomaly_reco, topic_reasoning).
Videos: ``<root>/<video_name>``; the original release's ``<root>/video/<video_name>`` is accepted too.
Scoring reports the pooled accuracy and the macro mean over task types.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from tspo_eval.benchmarks.base import (
    Benchmark,
    check_answer,
    optional_float,
    require_str,
)
from tspo_eval.benchmarks.records import QuestionRecord
from tspo_eval.errors import AnnotationError

_INLINE_OPTIONS = re.compile(r"\n\s*\(A\)")


def question_stem(question: str) -> str:
    """The text before the first inline "(A) ..." option line."""
    match = _INLINE_OPTIONS.search(question)
    return (question[: match.start()] if match else question).strip()


class MLVU(Benchmark):
    name = "mlvu"
    breakdowns = ("task_type",)
    option_style = "paren"
    post_prompt = "\nOnly give the best option.\nBest option: ("
    macro_breakdown = "task_type"
    env_prefix = "MLVU"
    name_patterns = (r"mlvu",)
    id_fields = ("question_id",)
    video_subdir = ""
    annotation_file = "mlvu.json"
    required_fields = ("question_id", "video_name", "question", "candidates", "answer", "task_type")

    def video_candidates(self, record: QuestionRecord) -> list[str]:
        names = super().video_candidates(record)
        return names + [f"video/{n}" for n in names]

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        qid = require_str(row, "question_id")
        try:
            candidates = row["candidates"]
            if not isinstance(candidates, list) or len(candidates) < 2:
                raise AnnotationError("'candidates' must be a list of option texts")
            question = require_str(row, "question")
            yield QuestionRecord(
                benchmark=self.name,
                question_id=qid,
                video=require_str(row, "video_name"),
                question=question_stem(question),
                options=[str(c) for c in candidates],
                answer=check_answer(row.get("answer"), len(candidates)),
                duration=optional_float(row.get("duration")),
                categories={"task_type": [require_str(row, "task_type")]},
                time_spans=[],
                extra={"raw_question": question},
            )
        except AnnotationError as exc:
            raise AnnotationError(f"question {qid}: {exc}") from None
