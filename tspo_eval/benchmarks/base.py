"""The interface every benchmark implements: load annotations, resolve videos, format prompts."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from tspo_eval.benchmarks.records import LETTERS, QuestionRecord
from tspo_eval.errors import AnnotationError, InputError

# A row of an annotation file with where it came from ("line 12", "row 3", "video X qa 2").
Row = tuple[str, Any]


class Benchmark:
    """One benchmark: how its annotation file reads, where its videos live, how it is prompted.

    Subclasses set the class attributes and implement :meth:`iter_rows` / :meth:`parse_row`
    (one file row may hold several questions, as in LVBench).
    """

    name: str = ""
    breakdowns: tuple[str, ...] = ()
    default_strategy: str = "topk"
    option_style: str = "dot"          # "dot": "A. text"; "paren": "(A) text"
    pre_prompt: str = ""
    post_prompt: str = ""
    macro_breakdown: str | None = None  # breakdown whose unweighted mean is also reported (MLVU)
    env_prefix: str = ""                # TSPO_EVAL_<prefix>_ANNOTATIONS / _VIDEOS for the lmms-eval task
    video_extensions: tuple[str, ...] = (".mp4",)
    video_subdir: str = ""              # usual layout folder: "videos" (LongVideoBench), "data" (Video-MME)

    # ---- loading -------------------------------------------------------------------------
    def load(self, annotation_path: str | Path) -> list[QuestionRecord]:
        """Read the original annotation file into question records (file order).

        Raises AnnotationError naming the file and the line / question id for a missing or
        malformed field, a duplicate question id, or an empty file.
        """
        path = Path(annotation_path)
        if not path.is_file():
            raise AnnotationError(f"{path}: annotation file not found")
        records: list[QuestionRecord] = []
        for where, row in self.iter_rows(path):
            try:
                records.extend(self.parse_row(row))
            except AnnotationError as exc:
                raise AnnotationError(f"{path}: {where}: {exc}") from None
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                problem = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
                raise AnnotationError(f"{path}: {where}: malformed {self.name} row ({problem})") from None
        if not records:
            raise AnnotationError(f"{path}: no questions in the {self.name} annotation file")
        duplicates = [qid for qid, count in Counter(r.question_id for r in records).items() if count > 1]
        if duplicates:
            raise AnnotationError(f"{path}: duplicate question ids: {', '.join(duplicates[:5])}"
                                  + (f" (+{len(duplicates) - 5} more)" if len(duplicates) > 5 else ""))
        return records

    def iter_rows(self, path: Path) -> Iterator[Row]:
        """Rows of a JSON list file (default); subclasses reading JSONL override this."""
        yield from read_json_list(path)

    def parse_row(self, row: dict[str, Any]) -> Iterable[QuestionRecord]:
        raise NotImplementedError

    # ---- videos --------------------------------------------------------------------------
    def video_candidates(self, record: QuestionRecord) -> list[str]:
        """Relative paths to try under the video root, the benchmark's usual layout first."""
        name = record.video
        stem, dot, ext = name.rpartition(".")
        names = [name]
        if dot:
            names += [f"{stem}{e}" for e in self.video_extensions + (f".{ext.upper()}",) if f"{stem}{e}" not in names]
        layout = [f"{self.video_subdir}/{n}" for n in names] if self.video_subdir else []
        flat = [n for n in names if n not in layout]
        return layout + flat

    def resolve_video(self, record: QuestionRecord, video_root: str | Path) -> Path:
        """Path of ``record``'s video under ``video_root``.

        Tries the benchmark's usual layout (e.g. ``<root>/videos/<video>``), then the file
        directly under the root, and alternative extensions (.mp4/.MP4/.mkv ...). When none
        exists, returns the usual-layout path (which does not exist) so callers can report it.
        """
        root = Path(video_root).expanduser()
        candidates = self.video_candidates(record)
        for rel in candidates:
            path = root / rel
            if path.is_file():
                return path
        return root / candidates[0]

    # ---- prompts -------------------------------------------------------------------------
    def format_options(self, record: QuestionRecord) -> str:
        """``stem\\nA. opt\\nB. opt`` (or ``(A) opt`` lines for the "paren" style)."""
        if self.option_style == "paren":
            lines = [f"({LETTERS[i]}) {opt}" for i, opt in enumerate(record.options)]
        else:
            lines = [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(record.options)]
        return record.question + "\n" + "\n".join(lines)

    def format_prompt(self, record: QuestionRecord, pre_prompt: str | None = None,
                      post_prompt: str | None = None) -> str:
        """The full text prompt: pre-prompt + question with options + post-prompt."""
        pre = self.pre_prompt if pre_prompt is None else pre_prompt
        post = self.post_prompt if post_prompt is None else post_prompt
        return f"{pre}{self.format_options(record)}{post}"

    # ---- export --------------------------------------------------------------------------
    def vlmevalkit_tsv(self, annotation_path: str | Path) -> str:
        """The VLMEvalKit data TSV of ``annotation_path`` (see ``benchmarks.vlmevalkit_tsv``)."""
        from tspo_eval.benchmarks.vlmevalkit_tsv import build_vlmevalkit_tsv

        return build_vlmevalkit_tsv(self, annotation_path)

    def __repr__(self) -> str:
        return f"<Benchmark {self.name}>"


def read_json_list(path: Path) -> Iterator[Row]:
    """Rows of a file holding one JSON list of objects ("row N", 0-based)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None
    if not text.strip():
        raise AnnotationError(f"{path}: empty annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict):   # {"questions": [...]} or {qid: row}
        data = data.get("questions", data.get("data", list(data.values())))
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of question objects")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise AnnotationError(f"{path}: row {i}: expected an object, got {type(row).__name__}")
        yield f"row {i}", row


def read_jsonl(path: Path) -> Iterator[Row]:
    """Rows of a JSON-lines file ("line N", 1-based); blank lines are skipped."""
    n = 0
    try:
        lines = path.read_text(encoding="utf-8").split("\n")   # not splitlines(): U+2028 may sit in a string
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise AnnotationError(f"{path}: line {lineno}: expected an object, got {type(row).__name__}")
        n += 1
        yield f"line {lineno}", row
    if n == 0:
        raise AnnotationError(f"{path}: empty annotation file")


def require_str(row: dict[str, Any], key: str) -> str:
    """``row[key]`` as a non-empty string (numbers are converted); AnnotationError otherwise."""
    if key not in row or row[key] is None:
        raise AnnotationError(f"missing field {key!r}")
    value = row[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"field {key!r} must be a non-empty string, got {value!r}")
    return value


def optional_float(value: Any) -> float | None:
    """A float from a number or numeric string; None for None / "" / non-numeric."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_answer(answer: Any, n_options: int) -> str:
    """An answer letter valid for ``n_options`` options, upper-cased."""
    if not isinstance(answer, str) or len(answer.strip()) != 1 or answer.strip().upper() not in LETTERS[:n_options]:
        raise AnnotationError(f"answer {answer!r} is not one of {', '.join(LETTERS[:n_options])}")
    return answer.strip().upper()


def unknown_benchmark(name: str, known: Iterable[str]) -> InputError:
    return InputError(f"unknown benchmark {name!r}; choose one of: {', '.join(known)}")
