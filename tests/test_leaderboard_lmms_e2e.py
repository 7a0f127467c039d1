"""A real ``python -m lmms_eval`` run of our model (tiny checkpoints, synthetic benchmark) read by the
leaderboard: labels from the real results file, the real ``tspo_*`` metric dicts, the frames recorded
in the real samples file as an index source, and the computed uniform reference against the model's
own uniform frames."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.leaderboard.board import build_leaderboard
from tspo_eval.leaderboard.runs import load_all, load_runs
from tspo_eval.leaderboard.span_hits import (
    build_span_board,
    record_times,
    uniform_times,
)
from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run

TASKS_DIR = Path(__file__).resolve().parents[1] / "tspo_eval" / "tasks"
K = 4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory, tiny_agent_dir: Path):
    from tspo_eval.benchmarks import get_benchmark
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    root = tmp_path_factory.mktemp("lb_e2e")
    annotations, videos = build_synthetic_benchmark(root / "syn", n_videos=2, questions_per_video=2, seconds=10, fps=5.0)
    qwen = build_tiny_qwen2_5_vl(root / "qwen")
    env = {**os.environ, "TSPO_EVAL_SYNTHETIC_ANNOTATIONS": str(annotations), "TSPO_EVAL_SYNTHETIC_VIDEOS": str(videos),
           "TSPO_EVAL_CACHE_DIR": str(root / "cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    args = (f"pretrained={qwen},tspo_path={tiny_agent_dir},num_frames={K},max_new_tokens=3,min_pixels=784,"
            f"max_pixels=3136,frame_selection=uniform")
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "qwen2_5_vl_tspo", "--model_args", args, "--tasks",
           "tspo_synthetic", "--include_path", str(TASKS_DIR), "--output_path", str(root / "out"), "--log_samples",
           "--verbosity", "DEBUG", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = get_benchmark("synthetic").load(annotations)
    return root, records


def test_real_lmms_eval_run_is_read_and_paired(real_run) -> None:
    root, records = real_run
    (run,) = load_runs(str(root / "out"))
    assert (run.benchmark, run.model, run.frame_source, run.num_frames) == ("synthetic", "qwen", "uniform", K)
    assert set(run.outcomes) == {r.question_id for r in records}
    assert run.details["frames_index"] == run.details["samples"] and run.details["frames_in_samples"] == len(records)
    assert all(run.categories[r.question_id] == r.categories for r in records)
    # a second run of the same model and budget on the same real question ids, one question fewer
    qids = [r.question_id for r in records]
    other = {q: (i % 2 == 0) for i, q in enumerate(qids[:-1])}
    write_lmms_eval_run(root / "other", "tspo_synthetic", {"pretrained": str(root / "qwen"), "frame_selection": "tspo",
                                                          "num_frames": K}, other)
    board = build_leaderboard(load_all([str(root / "out"), str(root / "other")]), n_boot=200, seed=0)
    (row,) = [r for r in board.rows if r.run == "tspo-4" and r.breakdown == "overall"]
    assert row.baseline == "uniform-4" and (row.n_paired, row.only_run, row.only_baseline) == (len(qids) - 1, 0, 1)
    base = np.array([run.outcomes[q] for q in qids[:-1]])
    assert row.delta == pytest.approx(100 * (np.mean(list(other.values())) - base.mean()))


def test_samples_uniform_frames_match_the_computed_reference(real_run) -> None:
    root, records = real_run
    board = build_span_board([str(root / "out")], {"synthetic": records}, n_boot=100, seed=0)
    (row,) = board.rows
    assert row.selector == f"uniform-{K}" and row.n == len(records) and row.uniform_n == row.n
    # the model's own uniform frames are exactly what the board computes as the uniform reference
    assert (row.hit_rate, row.frame_fraction, row.span_recall) == pytest.approx(
        (row.uniform_hit_rate, row.uniform_frame_fraction, row.uniform_span_recall))
    assert (row.mcnemar_b, row.mcnemar_c) == (0, 0)
    from tspo_eval.frame_records import frames_from_samples

    (samples,) = (root / "out").rglob("*_samples_tspo_synthetic.jsonl")
    assert row.source == str(samples)
    records = frames_from_samples(samples)
    assert set(records) == {r.question_id for r in real_run[1]}
    for record in records.values():
        assert record_times(record) == pytest.approx(uniform_times(record))


def test_runs_made_before_frames_moved_into_samples_keep_their_side_log(tmp_path: Path) -> None:
    """An older run folder: frames only in ``<date>_tspo_frames_<task>.jsonl`` next to the results."""
    from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
    from tspo_eval.leaderboard.span_hits import index_files

    folder = write_lmms_eval_run(tmp_path / "old", "tspo_synthetic", {"pretrained": "q", "num_frames": K},
                                 {"q1": True, "q2": False}, datetime_str="20250101_000000")
    side_log = write_index(folder / "20250101_000000_tspo_frames_tspo_synthetic.jsonl", [
        IndexRecord(benchmark="synthetic", question_id=q, video="v.mp4", n_frames=50, avg_fps=5.0, candidate_stride=5,
                    frame_indices=[0, 10], timestamps=[0.0, 2.0], strategy="topk", scorer="tspo",
                    agent_fingerprint="a", clip_fingerprint="c") for q in ("q1", "q2")])
    (run,) = load_runs(str(tmp_path / "old"))
    assert run.details["frames_index"] == str(side_log) and run.details["frames_in_samples"] == 0
    assert index_files(tmp_path / "old") == [side_log]  # its samples file holds no frames


def test_index_files_prefers_samples_with_frames_and_finds_every_side_log_name(tmp_path: Path) -> None:
    import json

    from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
    from tspo_eval.leaderboard.span_hits import index_files

    record = IndexRecord(benchmark="synthetic", question_id="q1", video="v.mp4", n_frames=50, avg_fps=5.0,
                         candidate_stride=5, frame_indices=[0, 10], timestamps=[0.0, 2.0], strategy="uniform",
                         scorer="uniform", agent_fingerprint="", clip_fingerprint="")
    run = tmp_path / "out" / "model"
    run.mkdir(parents=True)
    with_frames = run / "20260101_120000_samples_tspo_synthetic.jsonl"
    with_frames.write_text(json.dumps({"doc_id": 0, "tspo_accuracy": {"question_id": "q1", "frames": record.to_dict()}}) + "\n")
    no_frames = run / "20260101_120000_samples_tspo_lvbench.jsonl"
    no_frames.write_text(json.dumps({"doc_id": 0, "tspo_accuracy": {"question_id": "q1", "frames": None}}) + "\n")
    same_task_log = write_index(run / "x_uniform_frames_tspo_synthetic.jsonl", [record])  # also in the samples
    other_logs = [write_index(tmp_path / "logs" / name, [record]) for name in
                  ("20260101_qwen2_5_vl_tspo_uniform_frames_videomme.jsonl", "20250101_tspo_frames_tspo_lvbench.jsonl",
                   "qwen_Video-MME_tspo_frames.jsonl")]
    write_index(tmp_path / "logs" / "s_m_tspo_frames_videomme.rank1.jsonl", [record])  # a per-rank part
    found = index_files(tmp_path)
    assert with_frames in found and no_frames not in found and same_task_log not in found
    assert sorted(found) == sorted([with_frames, *other_logs])
