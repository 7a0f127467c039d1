"""Reading runs: lmms-eval output folders, VLMEvalKit tables, ``tspo-eval score --json`` outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.leaderboard.runs import (
    assign_names,
    load_all,
    load_runs,
    parse_model_args,
    short_model_name,
)
from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run

OUTCOMES = {"a1": True, "a2": False, "a3": True}


def synthetic_annotation(path: Path, n: int = 6) -> Path:
    """A synthetic-benchmark annotation file (C's format) with n questions, answers cycling A-D."""
    rows = [{"question_id": f"s{i}", "video": f"v{i // 2}.mp4", "question": f"What colour is needle {i}?",
             "options": ["red", "green", "blue", "white"], "answer": "ABCD"[i % 4], "duration": 20.0,
             "task_type": "colour" if i % 2 else "order", "time_spans": [[2.0 + i, 4.0 + i]]} for i in range(n)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_lmms_eval_labels_tasks_and_defaults(tmp_path: Path) -> None:
    write_lmms_eval_run(tmp_path, "tspo_videomme", {"pretrained": "/ckpt/models/Qwen2.5-VL-7B"}, OUTCOMES,
                        model="qwen2_5_vl_tspo", datetime_str="20260102_000000")
    write_lmms_eval_run(tmp_path, "tspo_lvbench", {"pretrained": "/ckpt/models/Qwen2.5-VL-7B", "max_num_frames": 32},
                        {"b1": False, "b2": True}, model="qwen2_5_vl", datetime_str="20260102_000001")
    runs = {r.benchmark: r for r in load_runs(str(tmp_path))}
    ours, builtin = runs["videomme"], runs["lvbench"]
    # our model without frame_selection / num_frames: its defaults (tspo, 64); local path -> last component
    assert (ours.model, ours.frame_source, ours.num_frames) == ("Qwen2.5-VL-7B", "tspo", 64)
    assert ours.outcomes == OUTCOMES and ours.task == "tspo_videomme" and ours.host == "lmms-eval"
    # a host built-in model samples uniformly; its frame budget comes from its own argument
    assert (builtin.frame_source, builtin.num_frames) == ("uniform", 32)
    assert builtin.outcomes == {"b1": False, "b2": True}


def test_results_file_and_samples_file_can_be_given_directly(tmp_path: Path) -> None:
    folder = write_lmms_eval_run(tmp_path, "tspo_mlvu", {"pretrained": "m", "frame_selection": "index",
                                                          "num_frames": 8}, OUTCOMES, datetime_str="20260103_000000")
    from_results = load_runs(str(folder / "20260103_000000_results.json"))
    from_samples = load_runs(str(folder / "20260103_000000_samples_tspo_mlvu.jsonl"))
    assert len(from_results) == len(from_samples) == 1
    assert (from_samples[0].frame_source, from_samples[0].num_frames, from_samples[0].benchmark) == ("index", 8, "mlvu")


def test_samples_without_results_are_read_as_unknown(tmp_path: Path) -> None:
    folder = write_lmms_eval_run(tmp_path, "tspo_lvbench", {"pretrained": "m", "num_frames": 4}, OUTCOMES)
    for results in folder.glob("*_results.json"):
        results.unlink()
    (run,) = load_runs(str(tmp_path))
    assert run.frame_source == "unknown" and run.outcomes == OUTCOMES


def test_builtin_task_metric_dicts(tmp_path: Path) -> None:
    """lmms-eval's own videomme task logs ``videomme_perception_score`` with pred_answer / answer."""
    folder = tmp_path / "llava-hf__LLaVA-Video-7B-Qwen2-hf"
    folder.mkdir()
    lines = []
    for i, (pred, answer, duration) in enumerate([("A", "A", "short"), ("B", "C", "long"), ("D", "D", "long")]):
        lines.append({"doc_id": i, "target": answer, "filtered_resps": pred, "doc_hash": "x", "input": "q",
                      "videomme_perception_score": {"question_id": f"00{i}-1", "duration": duration,
                                                    "category": "Knowledge", "pred_answer": pred,
                                                    "answer": answer, "score": float(pred == answer),
                                                    "videoID": "abc"}})
    (folder / "20260104_000000_samples_videomme.jsonl").write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    (folder / "20260104_000000_results.json").write_text(json.dumps(
        {"results": {"videomme": {}}, "config": {"model": "llava_vid", "model_args": "pretrained=llava-hf/"
                                                  "LLaVA-Video-7B-Qwen2-hf,max_frames_num=64"}}))
    (run,) = load_runs(str(tmp_path))
    assert run.benchmark == "videomme" and (run.frame_source, run.num_frames) == ("uniform", 64)
    assert run.outcomes == {"000-1": True, "001-1": False, "002-1": True}
    assert run.categories["001-1"] == {"duration": ["long"], "category": ["Knowledge"]}


def test_duplicates_and_malformed_lines(tmp_path: Path) -> None:
    folder = write_lmms_eval_run(tmp_path, "tspo_lvbench", {"pretrained": "m"}, OUTCOMES)
    samples = next(folder.glob("*_samples_*.jsonl"))
    first = samples.read_text().splitlines()[0]
    samples.write_text(samples.read_text() + first + "\n")
    (run,) = load_runs(str(tmp_path))
    assert run.duplicates == 1 and run.n == 3
    samples.write_text(samples.read_text() + '{"doc_id": 9, "target": "A"}\n')
    with pytest.raises(AnnotationError, match="line 5"):
        load_runs(str(tmp_path))


def test_names_from_the_command_line(tmp_path: Path) -> None:
    a = write_lmms_eval_run(tmp_path / "a", "tspo_lvbench", {"pretrained": "m", "frame_selection": "uniform"}, OUTCOMES)
    write_lmms_eval_run(tmp_path / "b", "tspo_lvbench", {"pretrained": "m", "frame_selection": "uniform"}, OUTCOMES)
    runs = load_all([f"base={a}", str(tmp_path / "b")])
    assert [r.name for r in runs] == ["base", "uniform-64"] and runs[0].named
    with pytest.raises(InputError, match="several runs are named 'x'"):
        load_all([f"x={a}", f"x={tmp_path / 'b'}"])
    with pytest.raises(InputError, match="run not found"):
        load_runs(f"y={tmp_path / 'missing'}")


def test_unnamed_duplicates_get_unique_names(tmp_path: Path) -> None:
    for i in range(2):
        write_lmms_eval_run(tmp_path, "tspo_lvbench", {"pretrained": "m", "frame_selection": "tspo"}, OUTCOMES,
                            datetime_str=f"20260105_00000{i}")
    runs = load_runs(str(tmp_path))
    assign_names(runs)
    assert [r.name for r in runs] == ["m:tspo-64", "m:tspo-64#2"]


def test_vlmevalkit_score_file_wins_over_predictions(tmp_path: Path) -> None:
    folder = tmp_path / "outputs" / "Qwen2.5-VL-7B-Instruct-TSPO" / "T20260101_G0123abc"
    folder.mkdir(parents=True)
    table = pd.DataFrame({"index": [0, 1, 2, 3], "question_id": ["001-1", "001-2", "002-1", "002-2"],
                          "duration": ["short", "short", "long", "long"], "domain": ["Sports"] * 4,
                          "task_type": ["Counting", "OCR", "OCR", "Counting"], "answer": ["A", "B", "C", "D"],
                          "prediction": ["A", "C", "C", "D"]})
    table.to_excel(folder / "Qwen2.5-VL-7B-Instruct-TSPO_Video-MME_64frame.xlsx", index=False)
    table.assign(score=[1, 0, 1, -1]).to_excel(
        folder / "Qwen2.5-VL-7B-Instruct-TSPO_Video-MME_64frame_score.xlsx", index=False)
    pd.DataFrame({"category": ["overall"], "acc": [50.0]}).to_csv(
        folder / "Qwen2.5-VL-7B-Instruct-TSPO_Video-MME_64frame_acc.csv", index=False)
    (run,) = load_runs(str(tmp_path / "outputs"))
    assert (run.benchmark, run.model, run.frame_source, run.num_frames) == (
        "videomme", "Qwen2.5-VL-7B-Instruct-TSPO", "tspo", 64)
    assert run.outcomes == {"001-1": True, "001-2": False, "002-1": True, "002-2": False}
    assert run.categories["002-1"] == {"duration": ["long"], "domain": ["Sports"], "task_type": ["OCR"]}
    assert run.host == "vlmevalkit" and run.path.endswith("_score.xlsx")


def test_vlmevalkit_predictions_are_rescored_with_the_annotation(tmp_path: Path) -> None:
    from tspo_eval.benchmarks import get_benchmark

    records = get_benchmark("synthetic").load(synthetic_annotation(tmp_path / "synthetic.json"))
    preds = ["The answer is A.", "B", "(A)", "D. white", "nothing", "B"]   # answers cycle A B C D A B
    folder = tmp_path / "Qwen2.5-VL-7B"
    folder.mkdir()
    pd.DataFrame({"index": range(6), "question": [r.question for r in records], "prediction": preds}).to_csv(
        folder / "Qwen2.5-VL-7B_synthetic_16frame.tsv", sep="\t", index=False)
    path = folder / "Qwen2.5-VL-7B_synthetic_16frame.tsv"
    with pytest.raises(AnnotationError, match="--annotations synthetic=FILE"):
        load_runs(str(path))
    (run,) = load_runs(str(path), {"synthetic": records})
    assert run.outcomes == {"s0": True, "s1": True, "s2": False, "s3": True, "s4": False, "s5": True}
    assert (run.num_frames, run.frame_source) == (16, "uniform")


def test_score_json_output(tmp_path: Path) -> None:
    from tspo_eval.benchmarks import get_benchmark, score_predictions

    records = get_benchmark("synthetic").load(synthetic_annotation(tmp_path / "synthetic.json"))
    report = score_predictions("synthetic", records, {"s0": "A", "s1": "C", "s2": "C"})
    path = tmp_path / "score_tspo.json"
    path.write_text(json.dumps(report.to_dict()))
    (run,) = load_runs(f"mine={path}")
    # questions without a prediction are not answered by this run (reported as unpaired later)
    assert run.outcomes == {"s0": True, "s1": False, "s2": True}
    assert (run.benchmark, run.name, run.frame_source, run.details["missing"]) == ("synthetic", "mine", "unknown", 3)


def test_model_args_helpers() -> None:
    assert parse_model_args("pretrained=a/b,num_frames=32, scorer=clip") == {
        "pretrained": "a/b", "num_frames": "32", "scorer": "clip"}
    assert parse_model_args({"num_frames": 8, "x": None}) == {"num_frames": "8"}
    assert short_model_name("lmms-lab/LLaVA-Video-7B-Qwen2") == "lmms-lab/LLaVA-Video-7B-Qwen2"
    assert short_model_name("/data/ckpts/qwen/Qwen2.5-VL-7B/") == "Qwen2.5-VL-7B"
