"""VLMEvalKit messages -> (video, question for the selector, question id), from the dataset row.

VLMEvalKit hands a model either a message built by the model itself (``use_custom_prompt`` ->
``model.build_prompt(row, dataset=...)``: the row is at hand) or one built by the dataset
(``dataset.build_prompt(index)``: only a video path, or frame images, and the prompt text). In
both cases the question id and the question text must be the row's:

* a message built by our ``build_prompt`` (or by our LVBench / synthetic datasets) carries them
  on its video item (keys ``question_id`` and ``question``);
* otherwise :class:`RowFinder` matches the message to a row of the running dataset: the video
  (the video item's file name, or the folder of the frame images VLMEvalKit saved) and, when a
  video has several questions, the row's question text inside the prompt;
* when neither works the id is made up (``<dataset>:<video>:<hash of the prompt>``) and counted.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tspo_eval.errors import InputError

_VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
#: id columns of VLMEvalKit video TSVs (LongVideoBench ``id``, our TSVs' ``question_id``, ...)
ID_COLUMNS = ("question_id", "id", "uid", "qid")


def normalize_message(message: Any) -> list[dict[str, Any]]:
    """VLMEvalKit's accepted message shapes (str, dict, list of str, list of dicts) -> list of dicts."""
    if isinstance(message, str):
        return [{"type": "text", "value": message}]
    if isinstance(message, dict):
        message = [message]
    if not isinstance(message, list):
        raise InputError(f"unsupported message type {type(message).__name__}")
    items = []
    for item in message:
        if isinstance(item, str):
            is_video = os.path.splitext(item)[1].lower() in _VIDEO_SUFFIXES
            items.append({"type": "video" if is_video else "text", "value": item})
        elif isinstance(item, dict) and "type" in item and "value" in item:
            items.append(item)
        else:
            raise InputError(f"malformed message item {item!r}"[:200])
    return items


def message_text(message: list[dict[str, Any]]) -> str:
    """The prompt: the message's non-empty text items joined by newlines."""
    return "\n".join(str(m["value"]) for m in message if m["type"] == "text" and str(m["value"]).strip())


def message_videos(message: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in message if m["type"] == "video"]


def row_get(row: Any, key: str) -> Any:
    """``row[key]`` of a pandas Series or dict, None when absent or a gap."""
    value = row.get(key, None) if hasattr(row, "get") else None
    if value is None or str(value) in ("", "nan"):
        return None
    return value


def row_question_id(row: Any, dataset_name: str | None) -> str | None:
    """Question id of a VLMEvalKit data row, or None.

    Video-MME's TSV has no id column: VLMEvalKit keeps the parquet's row order (3 questions per
    video, ids ``001-1`` .. ``900-3``), so the id follows from ``index`` (``original_index`` in
    a concatenated dataset).
    """
    for column in ID_COLUMNS:
        value = row_get(row, column)
        if value is not None:
            return str(value)
    index = row_get(row, "original_index")
    index = row_get(row, "index") if index is None else index
    if dataset_name and "videomme" in dataset_name.lower().replace("-", "").replace("_", "") and index is not None:
        i = int(index)
        return f"{i // 3 + 1:03d}-{i % 3 + 1}"
    return None


def fallback_question_id(dataset: str | None, video: str, prompt: str) -> str:
    """A made-up id for a message no dataset row matched (see ``vlmevalkit_summary.is_fallback_id``)."""
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:10]
    return f"{dataset or 'unknown'}:{Path(video).stem}:{digest}"


def video_key(value: Any) -> str:
    """Match key of a video: the file stem (``abc`` for ``/data/video/abc.mp4``, ``abc`` and ``abc.mp4``)."""
    return Path(str(value).rstrip("/")).stem


@dataclass
class VideoQuery:
    """What the frame source and the VLM need for one message."""

    prompt: str        # the message's text for the VLM (question, options, instructions)
    video: str         # local video path
    question: str      # question text for the frame selector (the row's question when known)
    question_id: str
    identified: bool   # False: the id is made up (no row matched)


class RowFinder:
    """Find the row of a VLMEvalKit dataset table (``video`` and ``question`` columns) for a message."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self._by_video: dict[str, list[int]] = {}
        for position, video in enumerate(data["video"]):
            self._by_video.setdefault(video_key(video), []).append(position)
        self._questions = [" ".join(str(q).split()) for q in data["question"]]

    def find(self, message: list[dict[str, Any]]) -> int | None:
        """Position (``data.iloc``) of the message's row, or None when no single row matches."""
        videos = message_videos(message)
        if videos:
            key = video_key(videos[0]["value"])
        else:
            images = [m for m in message if m["type"] == "image"]
            if not images:
                return None
            key = video_key(Path(str(images[0]["value"])).parent)  # VLMEvalKit saves frames to <frame_root>/<video>/
        candidates = self._by_video.get(key, [])
        if len(candidates) > 1:
            text = " ".join(message_text(message).split())
            candidates = [p for p in candidates if self._questions[p] and self._questions[p] in text]
        return candidates[0] if len(candidates) == 1 else None


def query_from_row_item(message: list[dict[str, Any]], dataset: str | None) -> VideoQuery | None:
    """The query of a message whose video item carries the row's ``question_id`` (else None)."""
    videos = message_videos(message)
    if len(videos) > 1:
        raise InputError(f"a TSPO video model needs one video per message, got {len(videos)}")
    if not videos or not videos[0].get("question_id"):
        return None
    item = videos[0]
    prompt = message_text(message)
    return VideoQuery(prompt=prompt, video=str(item["value"]), question=str(item.get("question") or prompt),
                      question_id=str(item["question_id"]), identified=True)


def fallback_query(message: list[dict[str, Any]], dataset: str | None) -> VideoQuery:
    """A query with a made-up id (no row known); InputError without exactly one video."""
    videos = message_videos(message)
    if len(videos) != 1:
        raise InputError("the message has no video (frames only) and no dataset row matched it"
                         if not videos else f"a TSPO video model needs one video per message, got {len(videos)}")
    prompt = message_text(message)
    video = str(videos[0]["value"])
    question = str(videos[0].get("question") or prompt)
    return VideoQuery(prompt=prompt, video=video, question=question,
                      question_id=fallback_question_id(dataset, video, prompt), identified=False)
