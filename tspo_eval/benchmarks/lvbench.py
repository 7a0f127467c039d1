"""LVBench (``video_info.meta.jsonl``: one video per line with its ``qa`` list).

Line: ``key`` (video stem), ``type`` (video genre), ``video_info`` {duration_minutes, fps,
resolution}, ``qa``: [{``uid`` (globally unique), ``question`` (stem + "(A) ..." option lines),
``answer`` (letter), ``question_type`` (a LIST), ``time_reference`` ("MM:SS-MM:SS")}].
Videos: ``<root>/<key>.mp4`` (also ``<root>/videos/<key>.mp4``).
A question counts in every type it lists; types are reported by their paper codes
(ER, EU, KIR, TG, Rea, Sum).
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
from tspo_eval.benchmarks.records import LETTERS, QuestionRecord
from tspo_eval.errors import AnnotationError

QUESTION_TYPE_CODES = {
    "entity recognition": "ER",
    "event understanding": "EU",
    "key information retrieval": "KIR",
    "temporal grounding": "TG",
    "reasoning": "Rea",
    "summarization": "Sum",
}
_OPTION_LINE = re.compile(r"^\s*\(([A-J])\)\s?(.*)$")


def parse_timestamp(text: str) -> float:
    """"MM:SS", "HH:MM:SS" or plain seconds -> seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        raise ValueError(f"bad timestamp {text!r}")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + float(part)
    return seconds


def parse_time_reference(text: Any) -> list[tuple[float, float]]:
    """``"MM:SS-MM:SS"`` -> [(start_s, end_s)]; [] when a bound is "None"/missing.

    A reversed span ("33:52-33:46", a dozen such rows in the release) is reordered, since the
    bounds are still the annotated ones. Raises AnnotationError for anything unparsable.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return []
    if not isinstance(text, str) or text.count("-") != 1:
        raise AnnotationError(f"time_reference {text!r} is not 'MM:SS-MM:SS'")
    start_text, end_text = (t.strip() for t in text.split("-"))
    if start_text in ("None", "") or end_text in ("None", ""):
        return []
    try:
        start, end = parse_timestamp(start_text), parse_timestamp(end_text)
    except ValueError:
        raise AnnotationError(f"time_reference {text!r} is not 'MM:SS-MM:SS'") from None
    return [(min(start, end), max(start, end))]


def split_inline_options(question: str) -> tuple[str, list[str]]:
    """Stem and option texts of a question with "(A) ..." lines; a line that is not an option
    continues the previous option."""
    stem_lines: list[str] = []
    options: list[str] = []
    for line in question.split("\n"):
        match = _OPTION_LINE.match(line)
        if match and match.group(1) == LETTERS[len(options)]:
            options.append(match.group(2).strip())
        elif options:
            options[-1] = f"{options[-1]}\n{line}".strip()
        else:
            stem_lines.append(line)
    return "\n".join(stem_lines).strip(), options


class LVBench(Benchmark):
    name = "lvbench"
    breakdowns = ("question_type",)
    option_style = "paren"
    post_prompt = "\nAnswer the question with the option letter."
    env_prefix = "LVBENCH"
    name_patterns = (r"lvbench",)
    id_fields = ("uid", "question_id")
    video_subdir = ""
    annotation_file = "video_info.meta.jsonl"
    file_layout = "jsonl"
    required_fields = ("key", "qa")

    def video_candidates(self, record: QuestionRecord) -> list[str]:
        names = super().video_candidates(record)
        return names + [f"videos/{n}" for n in names]

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        key = require_str(row, "key")
        qa = row.get("qa")
        if not isinstance(qa, list):
            raise AnnotationError(f"video {key}: 'qa' must be a list of questions")
        info = row.get("video_info") if isinstance(row.get("video_info"), dict) else {}
        minutes = optional_float(info.get("duration_minutes"))
        for position, item in enumerate(qa):
            if not isinstance(item, dict):
                raise AnnotationError(f"video {key}: qa[{position}] is not an object")
            uid = item.get("uid")
            try:
                uid = require_str(item, "uid")
                stem, options = split_inline_options(require_str(item, "question"))
                if len(options) < 2:
                    raise AnnotationError("question has fewer than two '(A) ...' option lines")
                types = item.get("question_type")
                if isinstance(types, str):
                    types = [types]
                if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
                    raise AnnotationError(f"question_type {types!r} must be a non-empty list of strings")
                reference = item.get("time_reference")
                yield QuestionRecord(
                    benchmark=self.name,
                    question_id=uid,
                    video=f"{key}.mp4",
                    question=stem,
                    options=options,
                    answer=check_answer(item.get("answer"), len(options)),
                    duration=minutes * 60.0 if minutes is not None else None,
                    categories={"question_type": [QUESTION_TYPE_CODES.get(t.strip().lower(), t) for t in types]},
                    time_spans=parse_time_reference(reference),
                    extra={"key": key, "video_type": row.get("type"), "time_reference": reference,
                           "fps": optional_float(info.get("fps")), "raw_question": item["question"]},
                )
            except AnnotationError as exc:
                raise AnnotationError(f"video {key}, question {uid}: {exc}") from None
