"""Video-MME (``videomme.json``: the Hugging Face parquet rows as JSON).

Rows: ``question_id`` ("001-1"), ``video_id`` ("001"), ``videoID`` (YouTube id = video file
stem), ``duration`` (short/medium/long), ``domain``, ``sub_category``, ``task_type``,
``question``, ``options`` (["A. ...", ...]), ``answer`` (letter), ``url``.
Videos: ``<root>/data/<videoID>.mp4`` (the release / lmms-eval layout), ``<root>/video/<videoID>.mp4``
(VLMEvalKit's) or ``<root>/<videoID>.mp4``; .MP4 / .mkv accepted.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from tspo_eval.benchmarks.base import Benchmark, check_answer, require_str
from tspo_eval.benchmarks.records import LETTERS, QuestionRecord
from tspo_eval.errors import AnnotationError

_LETTERED = re.compile(r"^\s*\(?([A-J])[\.\)]\s*(.*)$", re.S)


def strip_option_letter(option: str, expected: str) -> str:
    """``"A. Apples."`` -> ``"Apples."``; AnnotationError when the letter is not ``expected``."""
    match = _LETTERED.match(option)
    if not match or match.group(1) != expected:
        raise AnnotationError(f"option {option!r} does not start with '{expected}.'")
    return match.group(2)


class VideoMME(Benchmark):
    name = "videomme"
    breakdowns = ("duration", "domain", "task_type")
    default_strategy = "bin-max"
    option_style = "dot"
    pre_prompt = ("Select the best answer to the following multiple-choice question based on the video. "
                  "Respond with only the letter (A, B, C, or D) of the correct option.\n")
    post_prompt = "\nAnswer with the option's letter from the given choices directly."
    env_prefix = "VIDEOMME"
    name_patterns = (r"video[-_]?mme",)
    id_fields = ("question_id",)
    video_subdir = "data"
    video_extensions = (".mp4", ".MP4", ".mkv")
    annotation_file = "videomme.json"
    required_fields = ("question_id", "videoID", "question", "options", "answer", "duration", "domain", "task_type")

    def video_candidates(self, record: QuestionRecord) -> list[str]:
        """``data/`` (lmms-eval / release), then ``video/`` (VLMEvalKit), then flat."""
        names = super().video_candidates(record)
        layout = [n for n in names if n.startswith("data/")]
        flat = [n for n in names if not n.startswith("data/")]
        return layout + [f"video/{n}" for n in flat] + flat

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        qid = require_str(row, "question_id")
        try:
            raw_options = row["options"]
            if not isinstance(raw_options, list) or len(raw_options) < 2:
                raise AnnotationError("'options' must be a list of lettered option strings")
            options = [strip_option_letter(str(o), LETTERS[i]) for i, o in enumerate(raw_options)]
            stem = require_str(row, "videoID")
            yield QuestionRecord(
                benchmark=self.name,
                question_id=qid,
                video=f"{stem}.mp4",
                question=require_str(row, "question").strip(),
                options=options,
                answer=check_answer(row.get("answer"), len(options)),
                duration=None,   # Video-MME gives a duration class, not seconds
                categories={key: [require_str(row, key)] for key in self.breakdowns},
                time_spans=[],
                extra={k: row[k] for k in ("video_id", "videoID", "sub_category", "url") if k in row},
            )
        except AnnotationError as exc:
            raise AnnotationError(f"question {qid}: {exc}") from None
        except KeyError as exc:
            raise AnnotationError(f"question {qid}: missing field {exc}") from None
