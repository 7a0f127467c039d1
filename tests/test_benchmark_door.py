"""The Benchmark is the one door to benchmark knowledge: recognising a host's task / dataset / file
name, the question-id fields of host rows, the ``auto`` strategy, where the files are."""
from __future__ import annotations

from pathlib import Path

import pytest

from tspo_eval.benchmarks import (
    benchmark_name_for,
    find_benchmark,
    get_benchmark,
    resolve_strategy,
)
from tspo_eval.errors import InputError


def test_benchmark_for_task_names():
    assert benchmark_name_for("longvideobench_val_v") == "longvideobench"
    assert benchmark_name_for("videomme_w_subtitle") == "videomme"
    assert benchmark_name_for("mlvu_dev") == "mlvu"
    assert benchmark_name_for("lvbench") == "lvbench"
    assert benchmark_name_for("tspo_synthetic") == "synthetic"
    assert benchmark_name_for("my_task") == "my_task"
    assert benchmark_name_for(None) == "unknown"


@pytest.mark.parametrize("name, expected", [
    ("Video-MME_64frame", "videomme"), ("tspo_video_mme_w_subtitle", "videomme"), ("LongVideoBench_64frame", "longvideobench"),
    ("lvb_val.json", "longvideobench"), ("LVBench_64frame", "lvbench"), ("LVBench.tsv", "lvbench"),
    ("MLVU_MCQ", "mlvu"), ("TSPO_Synthetic", "synthetic"), ("mmbench", None), ("", None),
])
def test_host_names_are_recognised_by_their_benchmark(name, expected):
    found = find_benchmark(name)
    assert (found.name if found else None) == expected
    if found is not None:
        assert found.matches(name) and found is get_benchmark(expected)


def test_auto_strategy_is_the_benchmarks_default():
    assert get_benchmark("videomme").default_strategy == "bin-max"
    assert resolve_strategy("auto", "Video-MME_64frame") == "bin-max"
    assert resolve_strategy("auto", "lvbench") == get_benchmark("lvbench").default_strategy == "topk"
    with pytest.raises(InputError, match="unknown strategy 'nearest'"):
        resolve_strategy("nearest", "mlvu")


def test_question_ids_are_read_as_strings_from_the_benchmarks_fields():
    assert get_benchmark("lvbench").question_id_of({"uid": 55, "question_id": "x"}) == "55"
    assert get_benchmark("lvbench").question_id_of({"question_id": "q1"}) == "q1"
    assert get_benchmark("videomme").question_id_of({"question_id": "001-1", "video_id": "001"}) == "001-1"
    assert get_benchmark("longvideobench").question_id_of({"id": "86CxyhFV9MI_0"}) == "86CxyhFV9MI_0"
    assert get_benchmark("mlvu").question_id_of({"question_id": float("nan")}) is None


def test_locations_from_arguments_environment_and_defaults(monkeypatch, tmp_path: Path):
    bench = get_benchmark("lvbench")
    assert bench.env_var("ANNOTATIONS") == "TSPO_EVAL_LVBENCH_ANNOTATIONS"
    monkeypatch.delenv("TSPO_EVAL_LVBENCH_ANNOTATIONS", raising=False)
    monkeypatch.delenv("TSPO_EVAL_LVBENCH_VIDEOS", raising=False)
    assert bench.locations() == (None, None)
    assert bench.locations(defaults={"annotations": str(tmp_path / "a.jsonl")}) == (tmp_path / "a.jsonl", tmp_path)
    monkeypatch.setenv("TSPO_EVAL_LVBENCH_ANNOTATIONS", str(tmp_path / "env.jsonl"))
    monkeypatch.setenv("TSPO_EVAL_LVBENCH_VIDEOS", str(tmp_path / "videos"))
    assert bench.locations(defaults={"annotations": "ignored"}) == (tmp_path / "env.jsonl", tmp_path / "videos")
    assert bench.locations(annotations=tmp_path / "arg.jsonl")[0] == tmp_path / "arg.jsonl"
    message = str(bench.missing_location_error("tspo_lvbench"))
    assert "TSPO_EVAL_LVBENCH_ANNOTATIONS" in message and "TSPO_EVAL_LVBENCH_VIDEOS" in message


@pytest.mark.parametrize("suffix", [".xlsx", ".tsv", ".csv"])
def test_every_table_reader_keeps_ids_as_text(tmp_path: Path, suffix: str):
    """A question id "001" must not become 1 in one reader and stay "001" in another."""
    import pandas as pd

    from tspo_eval.benchmarks import load_predictions
    from tspo_eval.benchmarks.predictions import read_table
    from tspo_eval.leaderboard.vlmeval_runs import read_nonempty_table

    frame = pd.DataFrame({"index": [0, 1], "question_id": ["001", "010"], "prediction": ["A", "B"], "hit": [1, 0]})
    path = tmp_path / f"preds{suffix}"
    if suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    assert read_table(path)["question_id"].tolist() == ["001", "010"]
    assert read_nonempty_table(path)["question_id"].tolist() == ["001", "010"]
    assert load_predictions(path) == {"001": "A", "010": "B"}
    assert read_table(path)["hit"].tolist() == [1, 0]  # other columns keep their types
