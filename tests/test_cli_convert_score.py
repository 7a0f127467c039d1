"""``tspo-eval convert`` / ``score`` / ``tasks-path`` end to end through the CLI entry point."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tspo_eval.cli import main

LVBENCH = {"key": "k", "type": "tv", "video_info": {"duration_minutes": 1.0},
           "qa": [{"uid": str(i), "question": "Q?\n(A) a\n(B) b\n(C) c\n(D) d", "answer": "ABCD"[i],
                   "question_type": ["reasoning", "summarization"] if i % 2 else ["reasoning"],
                   "time_reference": f"00:0{i}-00:0{i + 1}"} for i in range(4)]}


@pytest.fixture()
def lvbench_file(tmp_path: Path) -> Path:
    path = tmp_path / "video_info.meta.jsonl"
    path.write_text(json.dumps(LVBENCH) + "\n")
    return path


def test_convert_json_and_jsonl(tmp_path, lvbench_file, capsys):
    out = tmp_path / "out" / "records.json"
    assert main(["convert", "lvbench", str(lvbench_file), "--to", "json", "-o", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["question_id"] for r in records] == ["0", "1", "2", "3"]
    assert records[1]["categories"] == {"question_type": ["Rea", "Sum"]} and records[1]["time_spans"] == [[1.0, 2.0]]
    assert "4 questions" in capsys.readouterr().out
    assert main(["convert", "lvbench", str(lvbench_file), "-o", str(tmp_path / "r.jsonl")]) == 0
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(x)["answer"] for x in lines] == ["A", "B", "C", "D"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_convert_vlmevalkit_lvbench(tmp_path, lvbench_file):
    import pandas as pd

    out = tmp_path / "LVBench.tsv"
    assert main(["convert", "lvbench", str(lvbench_file), "--to", "vlmevalkit", "-o", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["index"].tolist() == [0, 1, 2, 3]
    assert table["video_path"].tolist() == ["./k.mp4"] * 4
    assert table["candidates"][0] == "['a', 'b', 'c', 'd']" and table["time_reference"][2] == "00:02-00:03"


@pytest.mark.parametrize("name,file,digest", [("longvideobench", "lvb_val.json", "82905eae3a5ae7383c5a8ee9655e1ab9"),
                                              ("videomme", "videomme.json", "85bdd91f9b29a99354c23b97ab7c113c")])
def test_convert_real_files_to_vlmevalkit_md5(shared_data, tmp_path, name, file, digest):
    out = tmp_path / f"{name}.tsv"
    assert main(["convert", name, str(shared_data / "annotations" / file), "--to", "vlmevalkit", "-o", str(out)]) == 0
    assert hashlib.md5(out.read_bytes()).hexdigest() == digest


def test_score_table_and_json(tmp_path, lvbench_file, capsys):
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"qid": q, "prediction": p}) + "\n"
                             for q, p in [("0", "A"), ("1", "Answer: B"), ("2", "hmm")]))
    assert main(["score", "lvbench", str(lvbench_file), str(preds)]) == 0
    table = capsys.readouterr().out
    assert "overall" in table and "50.00%" in table and "Rea" in table
    assert main(["score", "lvbench", str(lvbench_file), str(preds), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["overall"], data["n"], data["unparsed"], data["missing"]) == (50.0, 4, 1, 1)
    assert data["breakdowns"]["question_type"]["Rea"] == {"accuracy": 50.0, "correct": 2, "n": 4}
    assert data["breakdowns"]["question_type"]["Sum"] == {"accuracy": 50.0, "correct": 1, "n": 2}
    assert "per_question" not in data
    assert main(["score", "lvbench", str(lvbench_file), str(preds), "--json", "--per-question",
                 "--answer-rule", "random", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == "random" and data["unparsed"] == 1 and set(data["per_question"]) == {"0", "1", "2", "3"}


def test_score_and_convert_errors(tmp_path, lvbench_file, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"qid": "nope", "prediction": "A"}) + "\n")
    assert main(["score", "lvbench", str(lvbench_file), str(preds)]) == 2
    assert "question ids not in the lvbench annotation: 'nope'" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": "k", "qa": [{"uid": "1", "question": "no options", "answer": "A",
                                                  "question_type": ["reasoning"]}]}) + "\n")
    assert main(["convert", "lvbench", str(bad), "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "line 1: video k, question 1" in err and not (tmp_path / "x.json").exists()
    with pytest.raises(SystemExit) as exc:
        main(["score", "egoschema", str(lvbench_file), str(preds)])
    assert exc.value.code == 2


def test_tasks_path(capsys):
    assert main(["tasks-path"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    names = {p.stem for p in folder.glob("*.yaml")}
    assert names == {"tspo_longvideobench", "tspo_videomme", "tspo_mlvu", "tspo_lvbench", "tspo_synthetic"}
    assert {p.name for p in folder.glob("*.py")} == {"__init__.py", "utils.py"}
