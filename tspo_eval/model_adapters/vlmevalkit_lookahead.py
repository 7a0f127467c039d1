"""Which videos VLMEvalKit asks about next, for the frame source's lookahead.

VLMEvalKit calls ``generate`` one sample at a time, but inside the launcher the running job's
dataset table is known (:func:`~tspo_eval.model_adapters.vlmevalkit_jobs.current_job`), and
``infer_data`` (``vlmeval/inference_video.py``) walks it in a fixed order: the table positions
``rank::world_size``, skipping rows already answered in a resumed run. So after the row of the
current message, the rows ``position + k * world_size`` come next; :class:`UpcomingRows` gives
the distinct videos of those rows (as the dataset itself names them for video models,
``dataset.build_prompt(position, video_llm=True)``) for :meth:`FrameSource.plan`.

Rows that a resumed run will skip may be prepared needlessly (their features land in the cache
all the same); outside the launcher (no job) nothing is planned, since the next message is unknown.
"""
from __future__ import annotations

from typing import Any

from loguru import logger

from tspo_eval.model_adapters.vlmevalkit_messages import (
    VideoQuery,
    message_videos,
    normalize_message,
    video_key,
)

#: table rows looked at past the current one per message (bounds the work when videos repeat)
SCAN_ROWS = 64


class UpcomingRows:
    """The videos of the rows after a message's row in one VLMEvalKit job (``job.dataset.data``)."""

    def __init__(self, job: Any) -> None:
        self.job = job
        data = getattr(job.dataset, "data", None)
        usable = data is not None and "video" in data
        self._keys = [video_key(v) for v in data["video"]] if usable else []
        self._questions = ([" ".join(str(q).split()) for q in data["question"]]
                           if usable and "question" in data else [""] * len(self._keys))
        self._paths: dict[str, str | None] = {}   # video key -> path the dataset gives (None: none)
        self._stride = max(1, int(getattr(job, "world_size", 1) or 1))

    def position_of(self, query: VideoQuery) -> int | None:
        """Table position of ``query``'s row: its video, and its question when the video has several rows."""
        key = video_key(query.video)
        rows = [p for p, k in enumerate(self._keys) if k == key]
        if len(rows) > 1:
            question = " ".join(str(query.question).split())
            rows = [p for p in rows if self._questions[p] == question] or rows[:1]
        if rows:
            self._paths.setdefault(key, query.video)
        return rows[0] if rows else None

    def videos_after(self, query: VideoQuery, depth: int) -> list[str]:
        """Up to ``depth`` distinct videos (paths) of the rows this rank answers after ``query``'s."""
        position = self.position_of(query)
        if position is None:
            return []
        current = video_key(query.video)
        found: list[str] = []
        seen = {current}
        last = min(len(self._keys), position + 1 + SCAN_ROWS * self._stride)
        for row in range(position + self._stride, last, self._stride):
            key = self._keys[row]
            if key in seen:
                continue
            seen.add(key)
            path = self._path_of(row, key)
            if path is not None:
                found.append(path)
                if len(found) >= depth:
                    break
        return found

    def _path_of(self, row: int, key: str) -> str | None:
        if key not in self._paths:
            try:
                videos = message_videos(normalize_message(self.job.dataset.build_prompt(row, video_llm=True)))
                self._paths[key] = str(videos[0]["value"]) if len(videos) == 1 else None
            except Exception as exc:  # noqa: BLE001 - a dataset's own prompt code; the row's own turn reports it
                logger.debug("lookahead: row {} of {} gave no video path ({})", row, self.job.dataset_name, exc)
                self._paths[key] = None
        return self._paths[key]
