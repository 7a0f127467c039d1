"""Scoring by the official rules with hand-computed expectations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tspo_eval.benchmarks import (
    extract_answer,
    get_benchmark,
    load_predictions,
    score_predictions,
)
from tspo_eval.errors import InputError


def lvbench_file(tmp_path: Path) -> Path:
    def qa(uid, answer, types):
        return {"uid": uid, "question": "Q?\n(A) a\n(B) b\n(C) c\n(D) d", "answer": answer,
                "question_type": types, "time_reference": "00:01-00:02"}
    line = {"key": "k", "type": "tv", "video_info": {"duration_minutes": 1.0},
            "qa": [qa("1", "A", ["entity recognition", "reasoning"]), qa("2", "B", ["entity recognition"]),
                   qa("3", "C", ["temporal grounding", "reasoning"]), qa("4", "D", ["summarization"])]}
    path = tmp_path / "lvbench.jsonl"
    path.write_text(json.dumps(line) + "\n")
    return path


def mlvu_file(tmp_path: Path) -> Path:
    def row(qid, task, answer):
        return {"video_name": f"{task}_{qid}.mp4", "duration": 100.0, "question": "Q?\n(A) x\n(B) y\n",
                "candidates": ["x", "y"], "answer": answer, "task_type": task, "question_id": qid}
    rows = [row("Q0", "needle", "A"), row("Q1", "needle", "B"), row("Q2", "needle", "A"), row("Q3", "count", "B")]
    path = tmp_path / "mlvu.json"
    path.write_text(json.dumps(rows))
    return path


def test_lvbench_question_counts_in_every_type(tmp_path):
    records = get_benchmark("lvbench").load(lvbench_file(tmp_path))
    report = score_predictions("lvbench", records, {"1": "A", "2": "C", "3": "The answer is C", "4": "no idea"})
    assert (report.overall, report.n, report.correct, report.unparsed) == (50.0, 4, 2, 1)
    by_type = {k: (v["accuracy"], v["n"]) for k, v in report.breakdowns["question_type"].items()}
    assert by_type == {"ER": (50.0, 2), "Rea": (100.0, 2), "TG": (100.0, 1), "Sum": (0.0, 1)}
    assert sum(n for _, n in by_type.values()) == 6 > report.n
    data = report.to_dict()
    assert data["per_question"] == {"1": True, "2": False, "3": True, "4": False}
    assert "macro" not in data and data["unparsed"] == 1


def test_mlvu_pooled_vs_macro(tmp_path):
    records = get_benchmark("mlvu").load(mlvu_file(tmp_path))
    report = score_predictions("mlvu", records, {"Q0": "A", "Q1": "(B)", "Q2": "A. x", "Q3": "A"})
    data = report.to_dict()
    assert data["pooled"] == data["overall"] == 75.0                     # 3 / 4
    assert data["macro"] == 50.0                                         # (100 + 0) / 2
    assert data["breakdowns"]["task_type"]["needle"] == {"accuracy": 100.0, "correct": 3, "n": 3}
    assert "macro (mean over task_type)" in report.to_table()


def test_missing_predictions_are_wrong_and_reported(tmp_path):
    records = get_benchmark("mlvu").load(mlvu_file(tmp_path))
    report = score_predictions("mlvu", records, {"Q0": "A", "Q3": "B"})
    assert (report.overall, report.missing, report.unparsed) == (50.0, ["Q1", "Q2"], 0)
    assert report.to_dict()["missing"] == 2
    assert "missing predictions" in report.to_table()


def test_unknown_question_ids_are_an_error(tmp_path):
    records = get_benchmark("mlvu").load(mlvu_file(tmp_path))
    with pytest.raises(InputError, match=r"2 prediction\(s\) for question ids not in the mlvu annotation: 'Q9', 'Q10'"):
        score_predictions("mlvu", records, {"Q0": "A", "Q9": "A", "Q10": "B"})
    with pytest.raises(InputError, match="answer rule"):
        score_predictions("mlvu", records, {}, rule="majority")
    with pytest.raises(InputError, match="no questions"):
        score_predictions("mlvu", [], {})


def test_random_rule_is_seeded_per_question(tmp_path):
    records = get_benchmark("lvbench").load(lvbench_file(tmp_path))
    preds = {"1": "??", "2": "??", "3": "??", "4": "D"}
    first = score_predictions("lvbench", records, preds, rule="random", seed=3)
    again = score_predictions("lvbench", list(reversed(records)), preds, rule="random", seed=3)
    assert first.parsed == again.parsed and first.unparsed == 3
    for qid in ("1", "2", "3"):
        assert first.parsed[qid] == extract_answer("", 4, rule="random", seed=f"3:{qid}")
    strict = score_predictions("lvbench", records, preds)
    assert strict.correct == 1 and strict.parsed["1"] is None
    assert first.correct == 1 + sum(first.parsed[q] == r.answer for q, r in zip("123", records))


def test_longvideobench_breakdowns(tmp_path):
    rows = [{"video_id": f"v{i}", "question": "Q?", "candidates": ["a", "b", "c", "d"], "correct_choice": i % 4,
             "question_category": cat, "id": f"v{i}_0", "video_path": f"v{i}.mp4", "duration_group": group,
             "duration": 10.0} for i, (cat, group) in enumerate([("TOS", 15), ("TOS", 600), ("S2E", 600), ("S2E", 3600)])]
    path = tmp_path / "lvb.json"
    path.write_text(json.dumps(rows))
    records = get_benchmark("longvideobench").load(path)
    report = score_predictions("longvideobench", records, {"v0_0": "A", "v1_0": "B", "v2_0": "A", "v3_0": "D"})
    assert report.overall == 75.0
    groups = report.breakdowns["duration_group"]
    assert list(groups) == ["15", "600", "3600"]                        # numeric order
    assert {k: v["accuracy"] for k, v in groups.items()} == {"15": 100.0, "600": 50.0, "3600": 100.0}
    assert {k: v["accuracy"] for k, v in report.breakdowns["question_category"].items()} == {"S2E": 50.0, "TOS": 100.0}


def test_videomme_real_file_with_answer_key_scores_100(shared_data):
    path = shared_data / "annotations" / "videomme.json"
    records = get_benchmark("videomme").load(path)
    preds = {r.question_id: f"The answer is {r.answer}." for r in records}
    report = score_predictions("videomme", records, preds)
    assert report.overall == 100.0 and report.unparsed == 0
    assert set(report.breakdowns) == {"duration", "domain", "task_type"}
    assert sum(v["n"] for v in report.breakdowns["duration"].values()) == 2700
    assert all(v["n"] == 900 for v in report.breakdowns["duration"].values())
    always_a = score_predictions("videomme", records, {r.question_id: "A" for r in records})
    assert always_a.overall == pytest.approx(100 * sum(r.answer == "A" for r in records) / 2700, abs=1e-3)


def test_mlvu_real_file_macro_differs_from_pooled(shared_data):
    records = get_benchmark("mlvu").load(shared_data / "annotations" / "mlvu.json")
    preds = {r.question_id: ("A" if r.categories["task_type"] == ["needle"] else r.answer) for r in records}
    report = score_predictions("mlvu", records, preds)
    per_type = report.breakdowns["task_type"]
    assert len(per_type) == 7 and sum(v["n"] for v in per_type.values()) == 2174
    assert report.macro == pytest.approx(sum(v["accuracy"] for v in per_type.values()) / 7, abs=1e-3)
    assert report.macro != report.overall


@pytest.mark.parametrize("name,file", [("videomme", "videomme.json"), ("longvideobench", "lvb_val.json")])
def test_vlmevalkit_result_table_from_our_tsv_scores(shared_data, tmp_path, name, file):
    """A VLMEvalKit result table = its data TSV + a prediction column; joined by id or index."""
    import io

    import pandas as pd

    from tspo_eval.benchmarks.vlmevalkit_tsv import build_vlmevalkit_tsv

    path = shared_data / "annotations" / file
    table = pd.read_csv(io.StringIO(build_vlmevalkit_tsv(name, path)), sep="\t")
    records = get_benchmark(name).load(path)
    answers = [r.answer for r in records]
    table["prediction"] = [f"{a}." if i % 10 else "unsure" for i, a in enumerate(answers)]
    table.to_csv(tmp_path / "result.tsv", sep="\t", index=False)
    report = score_predictions(name, records, load_predictions(tmp_path / "result.tsv", records=records))
    n_unsure = len(range(0, len(records), 10))
    assert (report.n, report.unparsed, report.correct) == (len(records), n_unsure, len(records) - n_unsure)
