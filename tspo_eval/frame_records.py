"""The frames each answer used: kept in-process by the model, written into lmms-eval's samples file.

lmms-eval (0.7.x) hands a model no output path, but it runs the model's ``generate_until`` and
then the task's ``process_results`` for the same documents in the same process (one process per
rank: each rank builds the requests of its own shard of documents, answers them, and scores that
same shard before the samples are gathered on rank 0).  So:

* our lmms-eval models put the :class:`~tspo_eval.frame_index_cache.index_store.IndexRecord` of
  every answered question into :data:`FRAME_BOOK`, keyed by (task name, question id); a question
  whose video failed gets its error instead;
* the ``tspo_*`` tasks' ``process_results`` reads the entry back (:meth:`FrameBook.entry`) and puts
  it into the per-sample metric dict under :data:`FRAMES_KEY` (and :data:`FRAMES_ERROR_KEY`), so
  the ``<date>_samples_<task>.jsonl`` file lmms-eval writes holds the frames of every answer;
* :func:`frames_from_samples` / :func:`read_frames` read them back as IndexRecords (leaderboard,
  span board, ``frame_selection=index`` with a samples file as the index).

A task object accepts only entries put after it was built (:meth:`FrameBook.mark`), so a second
evaluation in the same Python process never inherits the first one's frames.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.errors import AnnotationError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import IndexRecord
from tspo_eval.lmms_samples import iter_samples, metric_dicts

#: metric-dict field holding the frames of one answer (an IndexRecord dict, or None)
FRAMES_KEY = "frames"
#: metric-dict field holding why an answer got no frames (absent when it got them)
FRAMES_ERROR_KEY = "frames_error"
#: ``<date>_samples_<task>.jsonl``: lmms-eval's per-task samples file (``--log_samples``)
SAMPLES_NAME_RE = re.compile(r"^(?P<date>.+?)_samples_(?P<task>.+)\.jsonl$")


@dataclass
class _Entry:
    sequence: int
    record: IndexRecord | None
    error: str | None


class FrameBook:
    """(task, question id) -> the frames an answer used (or the error that left it without frames).

    Thread-safe: lmms-eval may score documents in worker threads while nothing writes any more.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._sequence = 0
        self._lock = threading.Lock()

    def _put(self, task: str, question_id: str, record: IndexRecord | None, error: str | None) -> None:
        with self._lock:
            self._sequence += 1
            self._entries[(str(task), str(question_id))] = _Entry(self._sequence, record, error)

    def put(self, task: str, question_id: str, record: IndexRecord) -> None:
        """The frames ``record`` answered ``question_id`` of ``task``."""
        self._put(task, question_id, record, None)

    def fail(self, task: str, question_id: str, error: str) -> None:
        """``question_id`` of ``task`` got no frames because of ``error``."""
        self._put(task, question_id, None, str(error))

    def mark(self) -> int:
        """The current position: entries put later are newer than the caller (a task object)."""
        with self._lock:
            return self._sequence

    def get(self, task: str, question_id: str, since: int = 0) -> tuple[IndexRecord | None, str | None] | None:
        """(record, error) of a question put after position ``since``; None when there is none."""
        with self._lock:
            entry = self._entries.get((str(task), str(question_id)))
        if entry is None or entry.sequence <= since:
            return None
        return entry.record, entry.error

    def entry(self, task: str, question_id: str, since: int = 0) -> dict[str, Any]:
        """The metric-dict fields for one question: ``{"frames": dict | None[, "frames_error": str]}``.

        ``frames`` is None when no TSPO model answered the question in this process (another
        model, a cached response) or its video failed (then ``frames_error`` says why).
        """
        found = self.get(task, question_id, since)
        if found is None:
            return {FRAMES_KEY: None}
        record, error = found
        out: dict[str, Any] = {FRAMES_KEY: record.to_dict() if record is not None else None}
        if error is not None:
            out[FRAMES_ERROR_KEY] = error
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: the one book of this process (= this lmms-eval rank)
FRAME_BOOK = FrameBook()


def is_samples_file(path: str | Path) -> bool:
    """Whether ``path`` is named like an lmms-eval samples file (``<date>_samples_<task>.jsonl``)."""
    return bool(SAMPLES_NAME_RE.match(Path(path).name))


def _frames_of(sample: dict[str, Any]) -> dict[str, Any] | None:
    """The frames dict of one samples line: the first metric dict carrying one (ours: ``tspo_*``)."""
    return next((metric[FRAMES_KEY] for _, metric in metric_dicts(sample)
                 if isinstance(metric.get(FRAMES_KEY), dict)), None)


def frames_from_samples(path: str | Path) -> dict[str, IndexRecord]:
    """IndexRecords (question id -> record, first answer of a duplicated id) of a samples file.

    Lines without frames (failed videos, answers by other models) are skipped; an empty dict
    means the file carries no frames. :class:`AnnotationError` names the line of a bad one.
    """
    out: dict[str, IndexRecord] = {}
    for lineno, sample in iter_samples(path):
        frames = _frames_of(sample)
        if frames is None:
            continue
        record = IndexRecord.from_dict(frames, where=f"{path}:{lineno}")
        out.setdefault(record.question_id, record)
    return out


def samples_have_frames(path: str | Path) -> bool:
    """Whether a samples file holds the frames of at least one answer (reads up to the first one)."""
    with Path(path).open("r", encoding="utf-8") as handle:
        for line in handle:
            if f'"{FRAMES_KEY}"' not in line:
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(sample, dict) and _frames_of(sample) is not None:
                return True
    return False


def read_frames(path: str | Path, benchmark: str | None = None) -> dict[str, IndexRecord]:
    """Frame records of any frame file: an lmms-eval samples file of a ``tspo_*`` task, our index
    JSONL (a side log, ``tspo-eval precompute``), or TSPO's published ``*_frameIdx.json``."""
    if is_samples_file(path):
        records = frames_from_samples(path)
        if not records:
            raise AnnotationError(f"{path}: this lmms-eval samples file holds no frames (only runs of our "
                                  "models on tspo_* tasks put them there)")
        logger.debug("{}: frames of {} questions read from the samples", path, len(records))
        return records
    return read_index(path, benchmark=benchmark)
