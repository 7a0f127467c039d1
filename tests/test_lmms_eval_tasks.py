"""The lmms-eval ``tspo_*`` tasks: YAML configs built into real lmms-eval task objects, the
per-sample metric dicts, and a full ``python -m lmms_eval --model dummy`` run of tspo_synthetic."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_eval.cli.tasks_path import tasks_dir

FIXTURES = {
    "longvideobench": ("TSPO_EVAL_LVB", [{"video_id": "v1", "question": "What?", "candidates": ["x", "y", "z"],
                                          "correct_choice": 1, "question_category": "TOS", "id": "v1_0",
                                          "video_path": "v1.mp4", "duration_group": 15, "duration": 9.0}]),
    "videomme": ("TSPO_EVAL_VIDEOMME", [{"video_id": "001", "duration": "short", "domain": "Knowledge",
                                         "sub_category": "History", "videoID": "yt1", "question_id": "001-1",
                                         "task_type": "Counting Problem", "question": "How many?",
                                         "options": ["A. 1.", "B. 2.", "C. 3.", "D. 4."], "answer": "D"}]),
    "mlvu": ("TSPO_EVAL_MLVU", [{"video_name": "count_1.mp4", "duration": 100.0, "question": "How many?\n(A) 1\n(B) 2\n",
                                 "candidates": ["1", "2"], "answer": "B", "task_type": "count", "question_id": "Q0"}]),
    "lvbench": ("TSPO_EVAL_LVBENCH", {"key": "k1", "type": "tv", "video_info": {"duration_minutes": 1.0},
                                      "qa": [{"uid": "7", "question": "Who?\n(A) a\n(B) b\n(C) c\n(D) d", "answer": "C",
                                              "question_type": ["reasoning", "entity recognition"],
                                              "time_reference": "00:01-00:03"}]}),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    return build_synthetic_benchmark(tmp_path_factory.mktemp("synthetic"), n_videos=3, questions_per_video=2,
                                     seconds=8, fps=4.0)


def load_task(name: str):
    """Build the lmms-eval task object from our YAML the way lmms-eval's TaskManager does."""
    from lmms_eval import utils as lmms_utils

    config = lmms_utils.load_yaml_config(str(tasks_dir() / f"tspo_{name}.yaml"), mode="full")
    return config["class"](config=config)


def test_yaml_tasks_build_from_local_files(tmp_path, monkeypatch):
    for name, (prefix, data) in FIXTURES.items():
        path = tmp_path / (f"{name}.jsonl" if name == "lvbench" else f"{name}.json")
        path.write_text(json.dumps(data) + "\n")
        monkeypatch.setenv(f"{prefix}_ANNOTATIONS", str(path))
        monkeypatch.setenv(f"{prefix}_VIDEOS", str(tmp_path / "videos"))
        task = load_task(name)
        assert task.config.task == f"tspo_{name}"
        doc = task.test_docs()[0]
        assert task.doc_to_target(doc) == doc["answer"]
        visual = task.doc_to_visual(doc)
        assert len(visual) == 1 and visual[0].startswith(str(tmp_path / "videos")) and not os.path.exists(visual[0])
        text = task.doc_to_text(doc)
        metrics = task.process_results(doc, [doc["answer"]])
        metric = metrics["tspo_accuracy"]
        assert metric["video_missing"] is True and metric["correct"] is False and metric["pred"] is None
        assert metric["question_id"] == doc["question_id"]
        if name == "videomme":
            assert text.startswith("Select the best answer") and "\nA. 1.\n" in text and visual[0].endswith("data/yt1.mp4")
        if name == "mlvu":
            assert text.endswith("(B) 2\nOnly give the best option.\nBest option: (") and "tspo_macro_accuracy" in metrics
        if name == "lvbench":
            assert metric["question_type"] == ["Rea", "ER"] and text.endswith("option letter.")
        if name == "longvideobench":
            assert (metric["duration_group"], metric["question_category"]) == ("15", "TOS")
            assert visual[0].endswith("videos/v1.mp4")


def test_missing_annotation_setting_is_a_clear_error(monkeypatch):
    from tspo_eval.errors import InputError

    monkeypatch.delenv("TSPO_EVAL_LVB_ANNOTATIONS", raising=False)
    with pytest.raises(InputError, match="TSPO_EVAL_LVB_ANNOTATIONS"):
        load_task("longvideobench")


def test_process_results_and_aggregation(synthetic, monkeypatch):
    ann, videos = synthetic
    monkeypatch.setenv("TSPO_EVAL_SYNTHETIC_ANNOTATIONS", str(ann))
    monkeypatch.setenv("TSPO_EVAL_SYNTHETIC_VIDEOS", str(videos))
    task = load_task("synthetic")
    docs = list(task.test_docs())
    assert len(docs) == 6 and all(os.path.isfile(task.doc_to_visual(d)[0]) for d in docs)
    answers = [task.process_results(d, [f"The answer is ({d['answer']})."])["tspo_accuracy"] for d in docs]
    assert all(m["correct"] and not m["unparsed"] for m in answers)
    wrong = [task.process_results(d, ["I cannot tell"])["tspo_accuracy"] for d in docs]
    assert all(m["unparsed"] and not m["correct"] for m in wrong)
    aggregate = task.aggregation()["tspo_accuracy"]
    assert aggregate(answers) == 100.0
    assert aggregate(answers[:3] + wrong[3:]) == 50.0
    monkeypatch.setenv("TSPO_EVAL_ANSWER_RULE", "random")
    guessed = [task.process_results(d, ["I cannot tell"])["tspo_accuracy"] for d in docs]
    assert all(m["pred"] in "ABCD" and m["unparsed"] for m in guessed)


def test_process_results_adds_the_frames_the_model_recorded(synthetic, monkeypatch):
    """The model's in-process record of (task, question id) lands in the per-sample metric dict;
    records made before the task object existed (an earlier run in this process) are ignored."""
    from tspo_eval.frame_index_cache.index_store import IndexRecord
    from tspo_eval.frame_records import FRAME_BOOK

    ann, videos = synthetic
    monkeypatch.setenv("TSPO_EVAL_SYNTHETIC_ANNOTATIONS", str(ann))
    monkeypatch.setenv("TSPO_EVAL_SYNTHETIC_VIDEOS", str(videos))
    first, second, third = [d["question_id"] for d in json.loads(Path(ann).read_text())[:3]]

    def record(qid: str, frames: list[int]) -> IndexRecord:
        return IndexRecord(benchmark="synthetic", question_id=qid, video="v.mp4", n_frames=32, avg_fps=4.0,
                           candidate_stride=4, frame_indices=frames, timestamps=[f / 4.0 for f in frames],
                           strategy="topk", scorer="tspo", agent_fingerprint="a", clip_fingerprint="c",
                           extra={"frame_source": "tspo"})

    FRAME_BOOK.put("tspo_synthetic", third, record(third, [0]))  # an earlier evaluation's answer
    task = load_task("synthetic")
    docs = {d["question_id"]: d for d in task.test_docs()}
    FRAME_BOOK.put("tspo_synthetic", first, record(first, [4, 12, 28]))
    FRAME_BOOK.put("other_task", second, record(second, [8]))
    FRAME_BOOK.fail("tspo_synthetic", second, "video broken.mp4: cannot decode")
    metrics = {qid: task.process_results(docs[qid], ["A"])["tspo_accuracy"] for qid in (first, second, third)}
    assert metrics[first]["frames"]["frame_indices"] == [4, 12, 28]
    assert metrics[first]["frames"]["extra"] == {"frame_source": "tspo"} and "frames_error" not in metrics[first]
    assert metrics[second]["frames"] is None and metrics[second]["frames_error"] == "video broken.mp4: cannot decode"
    assert metrics[third] == {**metrics[third], "frames": None} and "frames_error" not in metrics[third]
    assert task.aggregation()["tspo_accuracy"](list(metrics.values())) >= 0.0  # the extra fields do not disturb scoring


def test_lmms_eval_dummy_run_of_tspo_synthetic(synthetic, tmp_path):
    """``python -m lmms_eval --model dummy`` end to end; one video is missing and must be scored
    as a failure while the run goes on. The dummy model answers "A" to everything."""
    ann, videos = synthetic
    root = tmp_path / "videos"
    shutil.copytree(videos, root)
    records = json.loads(Path(ann).read_text())
    missing_video = records[-1]["video"]
    (root / missing_video).unlink()
    expected = 100.0 * sum(r["answer"] == "A" and r["video"] != missing_video for r in records) / len(records)
    out = tmp_path / "results"
    env = dict(os.environ, TSPO_EVAL_SYNTHETIC_ANNOTATIONS=str(ann), TSPO_EVAL_SYNTHETIC_VIDEOS=str(root),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TSPO_EVAL_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("TSPO_EVAL_ANSWER_RULE", None)
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "dummy", "--tasks", "tspo_synthetic",
           "--include_path", str(tasks_dir()), "--batch_size", "1", "--verbosity", "DEBUG",
           "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    results_files = list(out.rglob("*_results.json"))
    assert len(results_files) == 1, log[-2000:]
    results = json.loads(results_files[0].read_text())["results"]["tspo_synthetic"]
    assert results["tspo_accuracy,none"] == pytest.approx(expected, abs=1e-3)
    assert missing_video in log and "video missing" in log
    samples_file, = out.rglob("*_samples_tspo_synthetic.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    metrics = {s["tspo_accuracy"]["question_id"]: s["tspo_accuracy"] for s in samples}
    assert set(metrics) == {r["question_id"] for r in records}
    for r in records:
        m = metrics[r["question_id"]]
        assert m["video_missing"] == (r["video"] == missing_video)
        assert m["correct"] == (r["answer"] == "A" and not m["video_missing"])
        assert m["task_type"] == r["task_type"] and m["answer"] == r["answer"]
        assert m["frames"] is None and "frames_error" not in m  # not a TSPO model: no frames on record
    # the samples file scores the same through `tspo-eval score`
    from tspo_eval.benchmarks import get_benchmark, load_predictions, score_predictions

    recs = get_benchmark("synthetic").load(ann)
    report = score_predictions("synthetic", recs, load_predictions(samples_file, records=recs))
    assert report.overall == pytest.approx(expected, abs=1e-3)
    assert report.missing == [r["question_id"] for r in records if r["video"] == missing_video]
