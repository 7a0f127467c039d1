"""The launcher's exit status from VLMEvalKit's run records, and fallbacks in the leaderboard labels.

The ``status.json`` documents below follow what ``run.py`` writes through
``vlmeval/smp/status_report.py`` (``upsert_run_status`` / ``upsert_dataset_status``, snapshot
e8e78f05): run fields, then one entry per dataset with ``status``, ``prediction_file`` and, for a
failed combination, ``error_message`` (the exception text run.py caught) or ``skip_reason``.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.errors import AnnotationError
from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
from tspo_eval.leaderboard import vlmeval_runs
from tspo_eval.model_adapters.vlmevalkit_status import (
    find_run_dirs,
    run_dir_failures,
    status_failures,
)
from tspo_eval.model_adapters.vlmevalkit_summary import failure_answer, side_log_name

ARGV = ["/src/VLMEvalKit/run.py", "--model", "M", "--data", "LVBench_64frame", "Video-MME_64frame",
        "--work-dir", "out", "--mode", "all"]


def write_status(run_dir: Path, datasets: dict, argv=ARGV, created: datetime.datetime | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    created = created or datetime.datetime.now().astimezone()
    status = {"schema_version": "1.0", "eval_id": run_dir.name, "created_at": created.isoformat(),
              "commit": "e8e78f05", "argv": argv, "api_mode": False, "world_size": 1, "mode": "all",
              "model_name": run_dir.parent.name, "updated_at": created.isoformat(), "datasets": datasets}
    (run_dir / "status.json").write_text(json.dumps(status, indent=2))
    return run_dir


def test_failed_combinations_are_named():
    status = {"model_name": "M", "datasets": {
        "LVBench_64frame": {"status": "done", "prediction_file": "M_LVBench_64frame.xlsx",
                            "error_message": "LVBench: annotation file not found: /nowhere/meta.jsonl"},
        "Video-MME_64frame": {"status": "done", "metrics": {"overall": 50.0}},
        "MLVU_64frame": {"status": "done", "skip_reason": "invalid_dataset"},
        "LongVideoBench_64frame": {"status": "infer"},
        "TSPO_Synthetic_8frame": {"status": "done", "skip_reason": "mode_infer"},
    }}
    names = ["LVBench_64frame", "Video-MME_64frame", "MLVU_64frame", "LongVideoBench_64frame",
             "TSPO_Synthetic_8frame", "LVBench_8frame"]
    rows = [{"benchmark": "Video-MME_64frame", "infer_failed": 3, "infer_total": 9}]
    assert status_failures(status, names, rows) == [
        "M x LVBench_64frame: LVBench: annotation file not found: /nowhere/meta.jsonl",
        "M x Video-MME_64frame: 3/9 answers are VLMEvalKit failures",
        "M x MLVU_64frame: skipped by VLMEvalKit (invalid_dataset)",
        "M x LongVideoBench_64frame: left unfinished (status 'infer')",
        "M x LVBench_8frame: VLMEvalKit recorded no status (run.py stopped before it?)",
    ]
    clean = {"model_name": "M", "datasets": {"Video-MME_64frame": {"status": "done", "metrics": {"overall": 1.0}}}}
    assert status_failures(clean, ["Video-MME_64frame"], [{"benchmark": "Video-MME_64frame", "infer_failed": 0,
                                                           "infer_total": 9}]) == []


def test_the_run_folder_of_this_call_is_found(tmp_path):
    started = datetime.datetime.now().astimezone()
    old = write_status(tmp_path / "M" / "T20200101-000000", {}, created=started - datetime.timedelta(hours=1))
    other = write_status(tmp_path / "M" / "T20990101-000000", {}, argv=[*ARGV, "--reuse"])
    mine = write_status(tmp_path / "M" / "T20990101-000001", {
        "LVBench_64frame": {"status": "done", "error_message": "boom"},
        "Video-MME_64frame": {"status": "done", "skip_reason": "mode_infer"}})
    assert find_run_dirs(tmp_path, ["M", "N"], ARGV, started) == {"M": mine, "N": None}
    assert old.is_dir() and other.is_dir()
    failures = run_dir_failures({"M": mine, "N": None}, ["M", "N"], ["LVBench_64frame", "Video-MME_64frame"])
    assert failures == ["M x LVBench_64frame: boom", "N: VLMEvalKit wrote no run status for this call"]


# ---- leaderboard labels ------------------------------------------------------------------------------
def record(qid: str, source: str, scorer: str = "tspo") -> IndexRecord:
    return IndexRecord(benchmark="lvbench", question_id=qid, video="v.mp4", n_frames=100, avg_fps=10.0,
                       candidate_stride=10, frame_indices=[0, 10], timestamps=[0.0, 1.0], strategy="topk",
                       scorer=scorer, agent_fingerprint="a", clip_fingerprint="c", extra={"frame_source": source})


@pytest.fixture
def run_folder(tmp_path) -> Path:
    folder = tmp_path / "outputs" / "Qwen2.5-VL-7B-Instruct-TSPO" / "T20260101-000000"
    folder.mkdir(parents=True)
    return folder


def write_table(folder: Path, predictions: list[str], scores: list[int], name="Qwen2.5-VL-7B-Instruct-TSPO") -> Path:
    table = pd.DataFrame({"index": range(len(predictions)), "question_id": [str(i) for i in range(len(predictions))],
                          "prediction": predictions, "score": scores})
    path = folder / f"{name}_LVBench_64frame_score.xlsx"
    table.to_excel(path, index=False)
    return path


def test_leaderboard_labels_index_runs_with_fallbacks(run_folder):
    path = write_table(run_folder, ["A", "B", "C", failure_answer("video not found")], [1, 0, 1, 0])
    write_index(run_folder / side_log_name("Qwen2.5-VL-7B-Instruct-TSPO", "LVBench_64frame"),
                [record("0", "index"), record("1", "index"), record("2", "uniform:missing-from-index")])
    run = vlmeval_runs.read_file(path)
    assert run.frame_source == "index+uniform(1/4)+frameless(1/4)"   # the model name says TSPO: the log knows better
    assert run.details["frame_sources"]["sources"] == {"index": 2, "uniform:missing-from-index": 1}
    assert run.outcomes == {"0": True, "1": False, "2": True, "3": False}


def test_leaderboard_labels_clean_and_logless_runs(run_folder):
    path = write_table(run_folder, ["A", "B"], [1, 0])
    write_index(run_folder / side_log_name("Qwen2.5-VL-7B-Instruct-TSPO", "LVBench_64frame"),
                [record("0", "tspo", scorer="clip"), record("1", "tspo", scorer="clip")])
    assert vlmeval_runs.read_file(path).frame_source == "clip"
    other = run_folder.parent.parent / "GPT4o" / "T1"
    other.mkdir(parents=True)
    path = write_table(other, ["A", failure_answer("timeout")], [1, 0], name="GPT4o")
    run = vlmeval_runs.read_file(path)   # no side log: the name decides, failures still show
    assert run.frame_source == "uniform+frameless(1/2)" and run.details["frameless"] == 1


def test_run_files_linked_into_the_model_folder_count_once(run_folder):
    """run.py links each run's files into ``<work-dir>/<model>/``: one run, read once (from its run folder)."""
    path = write_table(run_folder, ["A", "B"], [1, 0])
    write_index(run_folder / side_log_name("Qwen2.5-VL-7B-Instruct-TSPO", "LVBench_64frame"),
                [record("0", "index"), record("1", "index")])
    for file in list(run_folder.iterdir()):
        (run_folder.parent / file.name).symlink_to(Path(run_folder.name) / file.name)
    runs = vlmeval_runs.read_dir(run_folder.parent.parent)
    assert [(r.path, r.frame_source) for r in runs] == [(str(path), "index")]


def test_frame_index_generator_tables_are_not_runs(tmp_path):
    folder = tmp_path / "TSPO_FrameIndex" / "T1"
    folder.mkdir(parents=True)
    table = pd.DataFrame({"index": [0, 1], "question_id": ["0", "1"],
                          "prediction": [record("0", "tspo").to_json(), failure_answer("gone")]})
    table.to_excel(folder / "TSPO_FrameIndex_LVBench_64frame.xlsx", index=False)
    with pytest.raises(AnnotationError, match="frame indices"):
        vlmeval_runs.read_file(folder / "TSPO_FrameIndex_LVBench_64frame.xlsx")
    assert vlmeval_runs.read_dir(tmp_path) == []
