"""Loading model predictions: lmms-eval samples JSONL, VLMEvalKit xlsx/tsv, plain JSONL.

Every loader returns ``{question_id: raw prediction text}``; extraction of the letter happens in
scoring. Question ids are found, in order of preference:

* lmms-eval ``*_samples_<task>.jsonl`` (``--log_samples``): a metric dict's ``question_id``
  (the ``tspo_*`` tasks, built-in ``videomme``) or ``id`` (built-in LongVideoBench), then the
  logged ``doc``'s ``question_id`` / ``id`` / ``uid``, then ``doc_id`` as a row position of
  the loaded annotation (``records``; the row's ``target`` must then equal that record's answer,
  otherwise the orders differ and an InputError says so). The text is ``filtered_resps[0]``
  (``resps[0]`` when absent). A ``tspo_*`` sample whose metric dict says ``video_missing`` is
  left out (logged), so it scores as a missing prediction, as the task scored it.
* VLMEvalKit ``.xlsx`` / ``.tsv`` / ``.csv``: column ``prediction``; ids from a ``question_id``
  / ``qid`` / ``id`` / ``uid`` column whose values are all known, else ``index`` as the row
  position of the annotation (our TSVs use ``index`` = 0..N-1); a ``question`` column must then
  agree with the annotation row, otherwise an InputError says the orders differ.
* Plain JSONL: ``{"qid" | "question_id": ..., "prediction" | "pred" | "response": ...}`` per line;
  a ``.json`` file holding a list of such objects or one object ``{qid: prediction}`` is accepted too.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Sequence

from loguru import logger

from tspo_eval.benchmarks.records import QuestionRecord
from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.lmms_samples import metric_dicts, metric_question_id

ID_KEYS = ("question_id", "qid", "id", "uid")
TEXT_KEYS = ("prediction", "pred", "response", "answer_text")


def load_predictions(path: str | Path, records: Sequence[QuestionRecord] | None = None) -> dict[str, str]:
    """``{question_id: prediction text}`` from any supported predictions file.

    ``records`` (the loaded annotation) is needed when rows carry only a position (lmms-eval
    ``doc_id``, VLMEvalKit ``index``). Raises AnnotationError for unreadable/empty files,
    malformed rows (named by line) and duplicate ids.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls", ".tsv", ".csv"):
        return _from_table(path, records)
    rows = list(_json_rows(path))
    if not rows:
        raise AnnotationError(f"{path}: empty predictions file")
    first = rows[0][1]
    if isinstance(first, dict) and "doc_id" in first and ("filtered_resps" in first or "resps" in first):
        return _from_lmms_eval(path, rows, records)
    return _from_plain(path, rows)


# ---- JSON / JSONL ----------------------------------------------------------------------------
def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """Rows of a JSONL file ("line N"); a ``.json`` file may also hold a list of rows ("row N")
    or an object ``{qid: prediction text}``."""
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            yield from ((f"row {i}", row) for i, row in enumerate(data))
            return
        if isinstance(data, dict) and all(isinstance(v, str) or v is None for v in data.values()):
            yield from ((f"key {k!r}", {"qid": k, "prediction": v}) for k, v in data.items())
            return
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {lineno}", json.loads(line)
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None


def _add(out: dict[str, str], path: Path, where: str, qid: str, text: str) -> None:
    if qid in out:
        raise AnnotationError(f"{path}: {where}: duplicate prediction for question id {qid!r}")
    out[qid] = text


def _from_plain(path: Path, rows: list[tuple[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for where, row in rows:
        if not isinstance(row, dict):
            raise AnnotationError(f"{path}: {where}: expected an object with 'qid' and 'prediction'")
        qid = next((row[k] for k in ID_KEYS if row.get(k) is not None), None)
        key = next((k for k in TEXT_KEYS if k in row), None)
        if qid is None or key is None:
            raise AnnotationError(f"{path}: {where}: needs 'qid' (or 'question_id') and 'prediction'")
        _add(out, path, where, _id_text(qid), _text(row[key]))
    return out


def _response_text(value: Any) -> str:
    """First string inside lmms-eval's (possibly nested) response lists."""
    while isinstance(value, (list, tuple)):
        if not value:
            return ""
        value = value[0]
    return _text(value)


def _from_lmms_eval(path: Path, rows: list[tuple[str, Any]],
                    records: Sequence[QuestionRecord] | None) -> dict[str, str]:
    known = {r.question_id for r in records} if records is not None else None
    out: dict[str, str] = {}
    mismatched: list[str] = []
    skipped_missing: list[str] = []
    for where, row in rows:
        if not isinstance(row, dict) or "doc_id" not in row:
            raise AnnotationError(f"{path}: {where}: not an lmms-eval sample (no 'doc_id')")
        text = _response_text(row["filtered_resps"] if "filtered_resps" in row else row.get("resps"))
        qid = _sample_question_id(row, known)
        if _video_missing(row):
            skipped_missing.append(qid or f"doc_id {row['doc_id']}")
            continue
        if qid is None:
            if records is None:
                raise InputError(f"{path}: {where}: sample has no question id; pass the annotation "
                                 "so doc_id can be mapped to its row")
            doc_id = row["doc_id"]
            if not isinstance(doc_id, int) or not 0 <= doc_id < len(records):
                raise AnnotationError(f"{path}: {where}: doc_id {doc_id!r} is not a row of the annotation "
                                      f"({len(records)} questions)")
            record = records[doc_id]
            target = row.get("target")
            if isinstance(target, str) and len(target.strip()) == 1 and target.strip().upper() != record.answer:
                mismatched.append(str(doc_id))
            qid = record.question_id
        _add(out, path, where, qid, text)
    if skipped_missing:
        logger.warning("{}: {} sample(s) had no video (scored as missing predictions): {}", path,
                       len(skipped_missing), ", ".join(skipped_missing[:10]))
    if mismatched:
        raise InputError(f"{path}: samples' doc_id order does not match the annotation file (target differs "
                         f"from the answer at doc_id {', '.join(mismatched[:5])}"
                         f"{' ...' if len(mismatched) > 5 else ''}); use samples that log question ids")
    return out


def _video_missing(row: dict[str, Any]) -> bool:
    """True when a ``tspo_*`` metric dict says the sample's video was missing."""
    return any(isinstance(v, dict) and v.get("video_missing") is True for k, v in row.items() if k != "doc")


def _sample_question_id(row: dict[str, Any], known: set[str] | None) -> str | None:
    candidates: list[Any] = [metric_question_id(metric) for _, metric in metric_dicts(row)]
    doc = row.get("doc") if isinstance(row.get("doc"), dict) else {}
    candidates += [doc.get(k) for k in ID_KEYS]
    for value in candidates:
        if value is None or isinstance(value, (dict, list)):
            continue
        qid = _id_text(value)
        if known is None or qid in known:
            return qid
    return None


# ---- tables (VLMEvalKit) --------------------------------------------------------------------
#: columns read as text in every table: ids ("001" stays "001") and VLMEvalKit's row index
TEXT_COLUMNS = (*ID_KEYS, "index", "video", "answer", "prediction")
TABLE_SUFFIXES = (".xlsx", ".xls", ".tsv", ".csv")


def read_table(path: str | Path):
    """A VLMEvalKit prediction / score / data table (.xlsx, .tsv, .csv) as a pandas DataFrame.

    The one table reader of the package: id, index, video, answer and prediction columns are read
    as text (an id "001" is not turned into 1), empty cells are NaN, other columns keep their types.

    Raises:
        InputError: a missing file or another suffix. AnnotationError: an unreadable table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"prediction file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{path}: use a .xlsx, .tsv or .csv prediction file")
    text_columns = {name: str for name in TEXT_COLUMNS}
    try:
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path, dtype=text_columns)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=text_columns,
                           keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas raises many types for unreadable files
        raise AnnotationError(f"{path}: cannot read the table ({type(exc).__name__}: {exc})") from None


def _from_table(path: Path, records: Sequence[QuestionRecord] | None) -> dict[str, str]:
    table = read_table(path)
    if table.empty:
        raise AnnotationError(f"{path}: empty predictions file")
    if "prediction" not in table.columns:
        raise AnnotationError(f"{path}: no 'prediction' column (columns: {', '.join(map(str, table.columns))})")
    known = {r.question_id for r in records} if records is not None else None
    id_column = None
    for key in ID_KEYS:
        if key in table.columns:
            values = {_id_text(v) for v in table[key]}
            if known is None or values <= known:
                id_column = key
                break
    if id_column is None and "index" not in table.columns:
        raise AnnotationError(f"{path}: needs a 'question_id' or an 'index' column")
    if id_column is None and records is None:
        raise InputError(f"{path}: rows are identified by 'index' only; pass the annotation to map them")
    out: dict[str, str] = {}
    mismatched: list[str] = []
    for position, row in enumerate(table.to_dict("records")):
        where = f"row {position + 2}"   # spreadsheet row (header is row 1)
        if id_column is not None:
            qid = _id_text(row[id_column])
        else:
            try:
                index = int(float(row["index"]))
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}: {where}: index {row['index']!r} is not an integer") from None
            if not 0 <= index < len(records):
                raise AnnotationError(f"{path}: {where}: index {index} is not a row of the annotation "
                                      f"({len(records)} questions)")
            record = records[index]
            if "question" in row and not _same_question(row["question"], record):
                mismatched.append(str(index))
            qid = record.question_id
        _add(out, path, where, qid, _text(row["prediction"]))
    if mismatched:
        raise InputError(f"{path}: rows joined by 'index' do not match the annotation (different question at "
                         f"index {', '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}); the table "
                         "was built from another file or order: add a question_id column")
    return out


def _same_question(text: Any, record: QuestionRecord) -> bool:
    """The table's question cell is the record's stem or its original question text."""
    def norm(value: Any) -> str:
        return " ".join(str(value).split())
    cell = norm(text)
    return cell in (norm(record.question), norm(record.extra.get("raw_question", record.question)))


def _id_text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)
