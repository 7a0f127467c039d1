"""LongVideoBench (validation set, ``lvb_val.json``, the original release file).

Rows: ``id``, ``video_id``, ``video_path`` (``<video_id>.mp4``), ``question``, ``candidates``
(3-5 option texts), ``correct_choice`` (0-based int), ``duration`` (s), ``duration_group``
(15/60/600/3600), ``question_category`` (17 codes), ``level``, ``topic_category``, ...
Videos: ``<root>/videos/<video_path>`` (the Hugging Face release layout), or ``<root>/<video_path>``.
"""
from __future__ import annotations

from typing import Any, Iterable

from tspo_eval.benchmarks.base import Benchmark, optional_float, require_str
from tspo_eval.benchmarks.records import QuestionRecord, letter
from tspo_eval.errors import AnnotationError


class LongVideoBench(Benchmark):
    name = "longvideobench"
    breakdowns = ("duration_group", "question_category")
    option_style = "dot"
    post_prompt = "\nAnswer with the option's letter from the given choices directly.\n"
    env_prefix = "LVB"
    name_patterns = (r"longvideobench", r"(^|[^a-z])lvb([^a-z]|$)")
    id_fields = ("id",)
    video_subdir = "videos"
    annotation_file = "lvb_val.json"
    required_fields = ("id", "video_path", "question", "candidates", "correct_choice", "question_category")

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        qid = require_str(row, "id")
        try:
            candidates = row["candidates"]
            if not isinstance(candidates, list) or not 2 <= len(candidates) <= 5:
                raise AnnotationError("'candidates' must be a list of 2-5 option texts")
            choice = row["correct_choice"]
            if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < len(candidates):
                raise AnnotationError(f"'correct_choice' {choice!r} is not an index into {len(candidates)} candidates")
            group = row.get("duration_group")
            yield QuestionRecord(
                benchmark=self.name,
                question_id=qid,
                video=require_str(row, "video_path"),
                question=require_str(row, "question").strip(),
                options=[str(c) for c in candidates],
                answer=letter(choice),
                duration=optional_float(row.get("duration")),
                categories={
                    "duration_group": [str(group)] if group is not None else [],
                    "question_category": [require_str(row, "question_category")],
                },
                time_spans=[],
                extra={k: row[k] for k in ("video_id", "level", "topic_category", "subtitle_path",
                                           "starting_timestamp_for_subtitles", "position",
                                           "question_wo_referring_query") if k in row},
            )
        except AnnotationError as exc:
            raise AnnotationError(f"question {qid}: {exc}") from None
        except KeyError as exc:
            raise AnnotationError(f"question {qid}: missing field {exc}") from None
