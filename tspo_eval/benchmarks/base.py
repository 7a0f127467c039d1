"""The interface every benchmark implements: load annotations, resolve videos, format prompts."""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

from tspo_eval.benchmarks.records import LETTERS, QuestionRecord, lettered_options
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
    annotation_file: str = ""           # the usual annotation file name ("mlvu.json"), for messages
    file_layout: str = "json-list"      # "json-list": one JSON list of rows; "jsonl": one JSON object per line
    required_fields: tuple[str, ...] = ()   # fields every row has (file-shape check on the first row)
    name_patterns: tuple[str, ...] = ()    # regexes that recognise it in a host task / dataset / file name
    id_fields: tuple[str, ...] = ("question_id",)  # question-id fields of host docs / dataset rows, first wins

    # ---- the benchmark as hosts name it ------------------------------------------------------
    def matches(self, task_or_dataset_name: str | None) -> bool:
        """Whether an lmms-eval task, VLMEvalKit dataset or file name is this benchmark's
        (``videomme_w_subtitle``, ``Video-MME_64frame``, ``tspo_lvbench``, ``LVBench.tsv`` ...)."""
        text = (task_or_dataset_name or "").lower()
        return any(re.search(pattern, text) for pattern in self.name_patterns)

    def question_id_of(self, row: dict[str, Any]) -> str | None:
        """The question id of a host doc / dataset row (first non-empty :attr:`id_fields`), as a string."""
        for name in self.id_fields:
            value = row.get(name)
            if value is not None and str(value) != "" and not (isinstance(value, float) and math.isnan(value)):
                return str(value)
        return None

    def env_var(self, what: str) -> str:
        """``TSPO_EVAL_<prefix>_<what>`` (``what``: ``ANNOTATIONS`` or ``VIDEOS``)."""
        return f"TSPO_EVAL_{self.env_prefix}_{what}"

    def locations(self, annotations: str | os.PathLike[str] | None = None,
                  videos: str | os.PathLike[str] | None = None,
                  defaults: dict[str, Any] | None = None) -> tuple[Path | None, Path | None]:
        """(annotation file, video root) from the arguments, else ``$TSPO_EVAL_<prefix>_ANNOTATIONS`` /
        ``_VIDEOS``, else ``defaults["annotations"]`` / ``["videos"]`` (e.g. a task's dataset_kwargs);
        None where nothing is set. The video root defaults to the annotation file's folder."""
        defaults = defaults or {}
        found_annotations = annotations or os.environ.get(self.env_var("ANNOTATIONS")) or defaults.get("annotations")
        found_videos = videos or os.environ.get(self.env_var("VIDEOS")) or defaults.get("videos")
        annotation_path = Path(found_annotations).expanduser() if found_annotations else None
        video_root = Path(found_videos).expanduser() if found_videos else None
        if video_root is None and annotation_path is not None:
            video_root = annotation_path.parent
        return annotation_path, video_root

    def missing_location_error(self, owner: str) -> InputError:
        """The error for a run that cannot find this benchmark's annotations, naming the variables."""
        return InputError(f"{owner}: set {self.env_var('ANNOTATIONS')} to the {self.name} annotation file "
                          f"({self.annotation_file}) and {self.env_var('VIDEOS')} to the video root")

    def expected_format(self) -> str:
        """What this benchmark's annotation file looks like, for error messages."""
        layout = "JSON lines, one object per line" if self.file_layout == "jsonl" else "one JSON list of objects"
        return f"{self.name} annotations ({self.annotation_file}): {layout} with fields {', '.join(self.required_fields)}"

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
        for n_rows, (where, row) in enumerate(self.iter_rows(path)):
            if n_rows == 0:
                self.check_first_row(path, where, row)
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
        """Rows of the file, as :attr:`file_layout` says."""
        if self.file_layout == "jsonl":
            yield from read_jsonl(path, expected=self.expected_format())
        else:
            yield from read_json_list(path, expected=self.expected_format())

    def check_first_row(self, path: Path, where: str, row: dict[str, Any]) -> None:
        """Refuse a file of another shape on its first row, saying what was expected and what was found.

        A first row that lacks only a few of :attr:`required_fields` is left to :meth:`parse_row`
        (a malformed row of the right file); one that lacks half or more of them, or that has every
        field of another benchmark, means the wrong file.
        """
        missing = [f for f in self.required_fields if f not in row]
        if not missing:
            return
        other = guess_benchmark(row, exclude=self.name)
        if other is None and 2 * len(missing) < len(self.required_fields):
            return
        raise AnnotationError(
            f"{path}: expected {self.expected_format()}; found {where} with fields "
            f"{describe_fields(row)} (missing {', '.join(missing)})" + _looks_like(other))

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
        return lettered_options(record.question, record.options, self.option_style)

    def format_prompt(self, record: QuestionRecord, pre_prompt: str | None = None,
                      post_prompt: str | None = None) -> str:
        """The full text prompt: pre-prompt + question with options + post-prompt."""
        pre = self.pre_prompt if pre_prompt is None else pre_prompt
        post = self.post_prompt if post_prompt is None else post_prompt
        return f"{pre}{self.format_options(record)}{post}"

    def __repr__(self) -> str:
        return f"<Benchmark {self.name}>"


def describe_fields(row: dict[str, Any], limit: int = 8) -> str:
    """``a, b, c (+4 more)``: the first field names of a row, for messages."""
    names = list(row)
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "") or "none"


def known_benchmarks() -> dict[str, "Benchmark"]:
    """Every benchmark class defined so far (the registry imports them all), one instance each, by name."""
    found: dict[str, Benchmark] = {}
    pending = list(Benchmark.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.name and cls.name not in found:
            found[cls.name] = cls()
    return found


def guess_benchmark(row: Any, exclude: str = "") -> str | None:
    """The benchmark whose every required field ``row`` has (None when none or several fit)."""
    if not isinstance(row, dict):
        return None
    fits = [name for name, bench in sorted(known_benchmarks().items()) if name != exclude
            and bench.required_fields and all(field in row for field in bench.required_fields)]
    return fits[0] if len(fits) == 1 else None


def _looks_like(benchmark: str | None) -> str:
    if benchmark is None:
        return ""
    return f"; it looks like {benchmark} annotations ({known_benchmarks()[benchmark].annotation_file})"


def _describe_json(data: Any) -> str:
    """``a JSON list of 2174 objects`` / ``a JSON object with keys a, b`` / ``a JSON string``."""
    if isinstance(data, list):
        kinds = {type(item).__name__ for item in data}
        inner = "objects" if kinds == {"dict"} else "items"
        return f"one JSON list of {len(data)} {inner}"
    if isinstance(data, dict):
        return f"one JSON object with keys {describe_fields(data)}"
    return f"a JSON {type(data).__name__}"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None


def _parse_json_lines(text: str) -> list[Any] | None:
    """Every non-blank line parsed as JSON, or None when a line is not JSON (or there are < 2)."""
    values = []
    for line in text.split("\n"):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError:
                return None
    return values if len(values) >= 2 else None


def read_json_list(path: Path, expected: str = "a JSON list of question objects") -> Iterator[Row]:
    """Rows of a file holding one JSON list of objects ("row N", 0-based).

    ``expected`` describes the wanted file in messages about a file of another shape (JSON
    lines, a single object, ...).
    """
    text = _read_text(path)
    if not text.strip():
        raise AnnotationError(f"{path}: empty annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = _parse_json_lines(text)
        if lines is not None:  # a JSON-lines file where one JSON document was expected
            first = lines[0]
            raise AnnotationError(
                f"{path}: expected {expected}; found JSON lines ({len(lines)} lines, the first with fields "
                f"{describe_fields(first) if isinstance(first, dict) else type(first).__name__})"
                + _looks_like(guess_benchmark(first))) from None
        raise AnnotationError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if isinstance(data, dict):   # {"questions": [...]}, {"data": [...]} or {qid: row}
        wrapped = data.get("questions", data.get("data"))
        if isinstance(wrapped, list):
            data = wrapped
        elif data and all(isinstance(v, dict) for v in data.values()):
            data = list(data.values())
        else:
            raise AnnotationError(f"{path}: expected {expected}; found {_describe_json(data)}"
                                  + _looks_like(guess_benchmark(data)))
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected {expected}; found {_describe_json(data)}")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise AnnotationError(f"{path}: row {i}: expected an object, got {type(row).__name__} "
                                  f"(expected {expected})")
        yield f"row {i}", row


def read_jsonl(path: Path, expected: str = "JSON lines, one object per line") -> Iterator[Row]:
    """Rows of a JSON-lines file ("line N", 1-based); blank lines are skipped.

    A file that is one JSON document over several lines (a JSON list, say) is named as such,
    with ``expected``, instead of failing as "line 1: invalid JSON".
    """
    n = 0
    text = _read_text(path)
    lines = text.split("\n")   # not splitlines(): U+2028 may sit in a string
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == 0:
                _refuse_single_document(path, text, expected)
            raise AnnotationError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            if n == 0:
                _refuse_single_document(path, text, expected)
            raise AnnotationError(f"{path}: line {lineno}: expected an object, got {type(row).__name__}")
        n += 1
        yield f"line {lineno}", row
    if n == 0:
        raise AnnotationError(f"{path}: empty annotation file")


def _refuse_single_document(path: Path, text: str, expected: str) -> None:
    """Raise when ``text`` as a whole is one JSON document (not JSON lines); return otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return
    first = data[0] if isinstance(data, list) and data else data
    raise AnnotationError(f"{path}: expected {expected}; found {_describe_json(data)}"
                          + _looks_like(guess_benchmark(first)))


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
