"""Frame-index files: one JSON line per question, written append-only and read back by question id.

An index file records which source frames a selector chose for each question, so a benchmark's
selection is computed once and reused by every model and run (``frame_selection=index``).

File format (JSONL, UTF-8): one object per line, keys in :class:`IndexRecord` field order, no
timestamps of the run itself, so two runs over the same inputs give byte-identical files.
:func:`~tspo_eval.frame_index_cache.index_files.read_index` also reads TSPO's published ``*_frameIdx.json`` files (a JSON array of the
original annotation rows plus ``frame_idx``).

Crash safety: :class:`IndexWriter` writes each record as a single ``write`` of one complete line
on an ``O_APPEND`` descriptor followed by ``fsync``, so a killed process loses at most the line it
was writing; on reopening, a torn last line is cut off and the ids already present are skipped.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from tspo_eval.atomic_files import atomic_write
from tspo_eval.errors import AnnotationError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from tspo_eval.selection_result import SelectionResult

#: flag set on records whose selection has fewer frames than were asked for (short video, or a
#: published row with fewer than 64 indices; the TSPO reference then fell back to uniform sampling)
FLAG_SHORT = "fewer-frames"
#: flag set on records imported from a published file (no video metadata was available)
FLAG_IMPORTED = "imported"

_REQUIRED = (
    "benchmark", "question_id", "video", "n_frames", "avg_fps", "candidate_stride",
    "frame_indices", "timestamps", "strategy", "scorer", "agent_fingerprint", "clip_fingerprint",
)


@dataclass
class IndexRecord:
    """The frames chosen for one question.

    ``frame_indices`` are 0-based source frame numbers in temporal order; ``timestamps`` are
    the frames' presentation times in seconds (``frame_index / avg_fps`` for a constant frame
    rate; empty when unknown, e.g. an imported published row without ``--videos``). ``n_frames``/``avg_fps`` are 0 when unknown. ``flags`` marks
    special cases (:data:`FLAG_SHORT`, :data:`FLAG_IMPORTED`); ``extra`` carries anything
    else, e.g. ``{"source_row": {...}}``, the original annotation row of an imported record.
    ``clip_fingerprint`` holds the scorer's image-encoder fingerprint (a result's
    ``encoder_fingerprint``); the name is kept so existing index files and samples stay readable.
    """

    benchmark: str
    question_id: str
    video: str
    n_frames: int
    avg_fps: float
    candidate_stride: int
    frame_indices: list[int]
    timestamps: list[float]
    strategy: str
    scorer: str
    agent_fingerprint: str
    clip_fingerprint: str
    flags: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_selection(
        cls,
        result: SelectionResult,
        benchmark: str,
        question_id: str,
        video: str,
        num_frames: int | None = None,
    ) -> IndexRecord:
        """Record of a :class:`~tspo_eval.selection_result.SelectionResult` (nothing else is read).

        ``video`` is the name to store (relative to the benchmark's video root, not the local
        path); ``num_frames`` (the K asked for) sets :data:`FLAG_SHORT` when fewer were chosen.
        ``candidate_stride`` is the stride of the video's candidate grid (``result.candidate_stride``),
        also when the frames came from an index file and are off that grid; the result's
        ``encoder_fingerprint`` is stored as ``clip_fingerprint``.
        """
        indices = result.frame_indices
        flags = [FLAG_SHORT] if num_frames is not None and len(indices) < num_frames else []
        return cls(
            benchmark=str(benchmark),
            question_id=str(question_id),
            video=str(video),
            n_frames=result.n_frames,
            avg_fps=result.avg_fps,
            candidate_stride=result.candidate_stride,
            frame_indices=indices,
            timestamps=result.timestamps,
            strategy=result.strategy,
            scorer=result.scorer,
            agent_fingerprint=result.agent_fingerprint,
            clip_fingerprint=result.encoder_fingerprint,
            flags=flags,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in field order; ``flags``/``extra`` are left out when empty."""
        data = asdict(self)
        if not data["flags"]:
            del data["flags"]
        if not data["extra"]:
            del data["extra"]
        return data

    def to_json(self) -> str:
        """One compact JSON line (no newline), deterministic for equal records."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> IndexRecord:
        """Validate and build; :class:`AnnotationError` naming ``where`` and the question id."""
        if not isinstance(data, dict):
            raise AnnotationError(f"{where}: an index record must be a JSON object, got {type(data).__name__}")
        missing = [k for k in _REQUIRED if k not in data]
        qid = data.get("question_id", "?")
        if missing:
            raise AnnotationError(f"{where}: index record {qid!r} lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        try:
            record = cls(**{k: v for k, v in data.items() if k in known})
            record.question_id = str(record.question_id)
            record.frame_indices = [int(i) for i in record.frame_indices]
            record.timestamps = [float(t) for t in record.timestamps]
            record.n_frames, record.candidate_stride = int(record.n_frames), int(record.candidate_stride)
            record.avg_fps = float(record.avg_fps)
        except (TypeError, ValueError) as exc:
            raise AnnotationError(f"{where}: index record {qid!r} is malformed: {exc}") from exc
        return record


def timestamps_for(frame_indices: Iterable[int], avg_fps: float) -> list[float]:
    """Seconds of each frame number, rounded to microseconds; ``[]`` when ``avg_fps`` is unknown."""
    if not avg_fps or avg_fps <= 0:
        return []
    return [round(int(i) / avg_fps, 6) for i in frame_indices]


def _natural_key(text: str) -> tuple:
    """Sort key that orders ``Q2`` before ``Q10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def record_sort_key(record: IndexRecord) -> tuple:
    """The canonical order of an index file: by video name, then question id (natural order)."""
    return (record.video, _natural_key(record.question_id), record.question_id)


def sort_records(records: Iterable[IndexRecord]) -> list[IndexRecord]:
    """Records in the canonical file order (see :func:`record_sort_key`)."""
    return sorted(records, key=record_sort_key)


def _scan_jsonl(path: Path) -> tuple[list[tuple[int, dict]], int, bool]:
    """Parse ``path``: ([(line_no, obj)], byte length of the good prefix, whether the tail was torn).

    Only the last line may be incomplete/unparseable (a crash mid-write); a bad line elsewhere
    is a corrupt file and raises :class:`AnnotationError`.
    """
    raw = path.read_bytes()
    rows: list[tuple[int, dict]] = []
    good_end = 0
    pos = 0
    line_no = 0
    while pos < len(raw):
        line_no += 1
        nl = raw.find(b"\n", pos)
        end = len(raw) if nl < 0 else nl + 1
        chunk = raw[pos:end]
        text = chunk.strip()
        if text:
            try:
                obj = json.loads(text.decode("utf-8"))  # a whole object: a torn line never parses
            except ValueError:
                if end == len(raw):
                    return rows, good_end, True
                raise AnnotationError(f"{path}:{line_no}: not a JSON line (corrupt index file)")
            rows.append((line_no, obj))
        good_end = end
        pos = end
    return rows, good_end, False


def iter_index_jsonl(path: str | Path) -> Iterator[IndexRecord]:
    """Records of a JSONL index file in file order (a torn last line is skipped with a warning)."""
    path = Path(path)
    rows, _, torn = _scan_jsonl(path)
    if torn:
        logger.warning("{}: ignoring an incomplete last line (interrupted write)", path)
    for line_no, obj in rows:
        yield IndexRecord.from_dict(obj, where=f"{path}:{line_no}")


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def write_index(path: str | Path, records: Iterable[IndexRecord]) -> Path:
    """Write a whole index file atomically (see :mod:`tspo_eval.atomic_files`)."""
    path = Path(path)
    atomic_write(path, "".join(record.to_json() + "\n" for record in records))
    return path


def merge_index_files(parts: Iterable[str | Path], out: str | Path) -> int:
    """Merge JSONL index files into ``out`` in canonical order (first record of a duplicate id wins).

    ``out``'s own records, if it exists, are kept too (merging is idempotent). Returns the count.
    """
    merged: dict[str, IndexRecord] = {}
    sources = [Path(out)] if Path(out).is_file() else []
    sources += [Path(p) for p in parts if Path(p).is_file()]
    for source in sources:
        for record in iter_index_jsonl(source):
            merged.setdefault(record.question_id, record)
    write_index(out, sort_records(merged.values()))
    return len(merged)


class IndexWriter:
    """Append-only JSONL index writer; resumable after a crash.

    Opening an existing file reads the ids already written (:meth:`done_ids`) and cuts off a
    torn last line. Each :meth:`write` appends one complete line with a single ``write`` call on
    an ``O_APPEND`` descriptor, then ``fsync`` (``durable=False`` skips the fsync for logs
    where speed matters more). A record whose id is already in the file is not written again.
    """

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done: set[str] = set()
        if self.path.exists():
            rows, good_end, torn = _scan_jsonl(self.path)
            if torn or good_end != self.path.stat().st_size:
                logger.warning("{}: cutting off an incomplete last line (interrupted write)", self.path)
                os.truncate(self.path, good_end)
            if good_end and _last_byte(self.path) != b"\n":  # a whole last record without newline
                with self.path.open("ab") as handle:
                    handle.write(b"\n")
            for line_no, obj in rows:
                self._done.add(IndexRecord.from_dict(obj, where=f"{self.path}:{line_no}").question_id)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides, as for open()

    def done_ids(self) -> set[str]:
        """Question ids already in the file (a copy)."""
        return set(self._done)

    def write(self, record: IndexRecord) -> bool:
        """Append ``record``; False (nothing written) when its id is already in the file."""
        if self._fd is None:
            raise InputError(f"{self.path}: index writer is closed")
        if record.question_id in self._done:
            logger.debug("{}: {} already written, skipped", self.path, record.question_id)
            return False
        data = (record.to_json() + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # partial writes are rare on regular files; finish the line
            written += os.write(self._fd, data[written:])
        if self.durable:
            os.fsync(self._fd)
        self._done.add(record.question_id)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except OSError:
            logger.debug("{}: closing the index writer failed", self.path)
