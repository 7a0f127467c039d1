"""Prediction loaders: lmms-eval samples, VLMEvalKit xlsx/tsv, plain JSONL, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.benchmarks import get_benchmark, load_predictions, score_predictions
from tspo_eval.errors import AnnotationError, InputError

ROWS = [{"video_name": f"v{i}.mp4", "duration": 60.0, "question": "Q?\n(A) x\n(B) y\n(C) z\n",
         "candidates": ["x", "y", "z"], "answer": "ABC"[i % 3], "task_type": "needle" if i < 2 else "count",
         "question_id": f"Q{i}"} for i in range(4)]          # answers A, B, C, A


@pytest.fixture()
def records(tmp_path):
    path = tmp_path / "mlvu.json"
    path.write_text(json.dumps(ROWS))
    return get_benchmark("mlvu").load(path)


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lmms_eval_samples_with_metric_question_ids(tmp_path, records):
    rows = [{"doc_id": i, "target": ROWS[i]["answer"], "filtered_resps": ["B"], "resps": [["B"]],
             "tspo_accuracy": {"question_id": f"Q{i}", "pred": "B"}} for i in (3, 1, 0)]
    preds = load_predictions(jsonl(tmp_path / "s.jsonl", rows))          # no annotation needed
    assert preds == {"Q3": "B", "Q1": "B", "Q0": "B"}
    report = score_predictions("mlvu", records, preds)
    assert (report.correct, report.missing) == (1, ["Q2"])


def test_lmms_eval_samples_doc_fields_and_doc_id_fallback(tmp_path, records):
    # built-in mlvu logs the question TEXT as question_id: it is not a known id, so doc_id maps the row
    rows = [{"doc_id": i, "target": ROWS[i]["answer"], "filtered_resps": "A",
             "mlvu_percetion_score": {"question_id": "Q?", "pred_answer": "A"}} for i in range(4)]
    assert load_predictions(jsonl(tmp_path / "a.jsonl", rows), records=records) == {f"Q{i}": "A" for i in range(4)}
    with pytest.raises(AnnotationError, match="duplicate prediction for question id 'Q\\?'"):
        load_predictions(tmp_path / "a.jsonl")                          # without the annotation: text ids clash
    with pytest.raises(InputError, match="pass the annotation"):
        load_predictions(jsonl(tmp_path / "n.jsonl", [{"doc_id": 0, "filtered_resps": ["A"]}]))
    rows = [{"doc_id": 0, "doc": {"question_id": "Q2"}, "resps": [["C"]], "target": "C"}]
    assert load_predictions(jsonl(tmp_path / "b.jsonl", rows), records=records) == {"Q2": "C"}
    shuffled = [{"doc_id": i, "target": ROWS[(i + 1) % 4]["answer"], "filtered_resps": ["A"], "x": True} for i in range(4)]
    with pytest.raises(InputError, match="doc_id order does not match"):
        load_predictions(jsonl(tmp_path / "c.jsonl", shuffled), records=records)
    with pytest.raises(AnnotationError, match="doc_id 9 is not a row"):
        load_predictions(jsonl(tmp_path / "d.jsonl", [{"doc_id": 9, "filtered_resps": ["A"]}]), records=records)


def test_vlmevalkit_xlsx_by_index_and_tsv_by_question_id(tmp_path, records):
    pd.DataFrame({"index": [0, 1, 2, 3], "question": ["Q?"] * 4,
                  "prediction": ["A", "The answer is B", None, "C"]}).to_excel(tmp_path / "r.xlsx", index=False)
    preds = load_predictions(tmp_path / "r.xlsx", records=records)
    assert preds == {"Q0": "A", "Q1": "The answer is B", "Q2": "", "Q3": "C"}
    report = score_predictions("mlvu", records, preds)
    assert (report.correct, report.unparsed) == (2, 1)
    pd.DataFrame({"index": [7, 8], "question_id": ["Q3", "Q0"], "prediction": ["A", "B"]}).to_csv(
        tmp_path / "r.tsv", sep="\t", index=False)
    assert load_predictions(tmp_path / "r.tsv", records=records) == {"Q3": "A", "Q0": "B"}
    pd.DataFrame({"index": [0, 1], "question": ["Q?", "Other question?"], "prediction": ["A", "B"]}).to_csv(
        tmp_path / "order.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="different question at index 1"):
        load_predictions(tmp_path / "order.tsv", records=records)
    pd.DataFrame({"index": [0, 5], "prediction": ["A", "B"]}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(AnnotationError, match="row 3: index 5 is not a row"):
        load_predictions(tmp_path / "bad.tsv", records=records)
    pd.DataFrame({"index": [0], "answer": ["A"]}).to_csv(tmp_path / "nopred.tsv", sep="\t", index=False)
    with pytest.raises(AnnotationError, match="no 'prediction' column"):
        load_predictions(tmp_path / "nopred.tsv", records=records)


def test_plain_jsonl_and_bad_files(tmp_path, records):
    path = jsonl(tmp_path / "p.jsonl", [{"qid": "Q0", "prediction": "A"}, {"question_id": "Q1", "prediction": "(b)"}])
    assert load_predictions(path) == {"Q0": "A", "Q1": "(b)"}
    (tmp_path / "m.json").write_text(json.dumps({"Q0": "C", "Q2": "C"}))
    assert load_predictions(tmp_path / "m.json") == {"Q0": "C", "Q2": "C"}
    dup = jsonl(tmp_path / "dup.jsonl", [{"qid": "Q0", "prediction": "A"}, {"qid": "Q0", "prediction": "B"}])
    with pytest.raises(AnnotationError, match="line 2: duplicate prediction for question id 'Q0'"):
        load_predictions(dup)
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(AnnotationError, match="empty predictions file"):
        load_predictions(tmp_path / "e.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"qid": "Q0", "prediction": "A"}\n{oops\n')
    with pytest.raises(AnnotationError, match="line 2: invalid JSON"):
        load_predictions(tmp_path / "broken.jsonl")
    bad = jsonl(tmp_path / "noid.jsonl", [{"prediction": "A"}])
    with pytest.raises(AnnotationError, match="line 1: needs 'qid'"):
        load_predictions(bad)
    with pytest.raises(InputError, match="not found"):
        load_predictions(tmp_path / "absent.jsonl")
    unknown = load_predictions(jsonl(tmp_path / "u.jsonl", [{"qid": "Q77", "prediction": "A"}]))
    with pytest.raises(InputError, match="'Q77'"):
        score_predictions("mlvu", records, unknown)


def test_samples_with_unicode_line_separator_in_response(tmp_path, records):
    path = tmp_path / "s.jsonl"
    rows = [{"doc_id": 0, "filtered_resps": ["B\u2028because"], "tspo_accuracy": {"question_id": "Q0"}},
            {"doc_id": 1, "filtered_resps": ["C"], "tspo_accuracy": {"question_id": "Q1"}}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert load_predictions(path) == {"Q0": "B\u2028because", "Q1": "C"}
