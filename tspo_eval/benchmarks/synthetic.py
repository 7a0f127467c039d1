"""The synthetic smoke-test benchmark (built by ``tspo_eval.testing.synthetic_benchmark``).

Annotation file: a JSON list of objects ``{"question_id", "video" (file name under the video
root), "question" (stem), "options" (texts), "answer" (letter), "duration" (s), "task_type",
"time_spans" ([[start_s, end_s], ...])}``. Videos: ``<root>/<video>``.
"""
from __future__ import annotations

from typing import Any, Iterable

from tspo_eval.benchmarks.base import (
    Benchmark,
    check_answer,
    optional_float,
    require_str,
)
from tspo_eval.benchmarks.records import QuestionRecord
from tspo_eval.errors import AnnotationError


class Synthetic(Benchmark):
    name = "synthetic"
    breakdowns = ("task_type",)
    option_style = "dot"
    post_prompt = "\nAnswer with the option's letter from the given choices directly.\n"
    env_prefix = "SYNTHETIC"
    name_patterns = (r"synthetic",)
    id_fields = ("question_id",)
    video_subdir = ""
    annotation_file = "synthetic.json"
    required_fields = ("question_id", "video", "question", "options", "answer", "task_type")

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        qid = require_str(row, "question_id")
        try:
            options = row["options"]
            if not isinstance(options, list) or len(options) < 2:
                raise AnnotationError("'options' must be a list of option texts")
            spans = []
            for span in row.get("time_spans") or []:
                if not isinstance(span, (list, tuple)) or len(span) != 2:
                    raise AnnotationError(f"time span {span!r} is not [start, end]")
                start, end = float(span[0]), float(span[1])
                if end < start:
                    raise AnnotationError(f"time span {span!r} ends before it starts")
                spans.append((start, end))
            yield QuestionRecord(
                benchmark=self.name,
                question_id=qid,
                video=require_str(row, "video"),
                question=require_str(row, "question").strip(),
                options=[str(o) for o in options],
                answer=check_answer(row.get("answer"), len(options)),
                duration=optional_float(row.get("duration")),
                categories={"task_type": [require_str(row, "task_type")]},
                time_spans=spans,
                extra={k: v for k, v in row.items() if k in ("needle_color", "fps")},
            )
        except AnnotationError as exc:
            raise AnnotationError(f"question {qid}: {exc}") from None
        except KeyError as exc:
            raise AnnotationError(f"question {qid}: missing field {exc}") from None
