"""The VLMEvalKit models on every call path of VLMEvalKit's video inference loop.

VLMEvalKit cannot be installed here; :mod:`tspo_eval.testing.vlmeval_standin` re-implements its
per-sample call order (``vlmeval/inference_video.py``: nframe negotiation, custom prompt or the
dataset's prompt, ``generate``).  Each path must give the question id and question text of the
dataset row: nframe setter called or not (equal frame counts: dataset 64 == model 64), custom
prompt or not (fps datasets), video or frames (``VIDEO_LLM`` off), inside the launcher's job
scope (:func:`job_runner`) and outside it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
from tspo_eval.model_adapters import vlmevalkit_jobs
from tspo_eval.model_adapters.vlmevalkit_jobs import job_runner
from tspo_eval.model_adapters.vlmevalkit_lvbench import LVBenchMixin
from tspo_eval.model_adapters.vlmevalkit_models import FrameIndexGenerator, TspoVideoLLM
from tspo_eval.model_adapters.vlmevalkit_summary import (
    FAIL_MSG,
    INFER_FAIL_MARKER,
    is_failed_answer,
    is_fallback_id,
    side_log_name,
)
from tspo_eval.testing.vlmeval_standin import (
    StandInVideoDataset,
    VideoMMEStyle,
    build_lvbench_style,
    build_videomme_style,
    infer_video_job,
)

MODEL = "TSPO_FrameIndex"


@pytest.fixture(scope="module")
def lvbench(tmp_path_factory) -> tuple[Path, Path]:
    return build_lvbench_style(tmp_path_factory.mktemp("vk_lvbench"))


@pytest.fixture(scope="module")
def lvbench_uids(lvbench) -> list[str]:
    """The annotation's uids in the TSV's row order (video by video, questions in file order)."""
    lines = [json.loads(line) for line in lvbench[0].read_text().splitlines()]
    return [qa["uid"] for line in lines for qa in line["qa"]]


@pytest.fixture(scope="module")
def videomme(tmp_path_factory):
    return build_videomme_style(tmp_path_factory.mktemp("vk_videomme"))


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("vk_features"))


@pytest.fixture(autouse=True)
def lmu_data(tmp_path, monkeypatch) -> Path:
    """VLMEvalKit's data folder (TSVs, saved frames) in the test's own folder."""
    monkeypatch.setenv("LMUData", str(tmp_path / "LMUData"))
    vlmevalkit_jobs.FINISHED.clear()
    return tmp_path / "LMUData"


def lvbench_dataset(lvbench, **variant) -> StandInVideoDataset:
    annotations, videos = lvbench
    cls = type("LVBench", (LVBenchMixin, StandInVideoDataset), {})
    return cls(dataset="LVBench", annotations=str(annotations), video_root=str(videos), **variant)


def generator(tiny_agent_dir, feature_cache, **kwargs) -> FrameIndexGenerator:
    return FrameIndexGenerator(tspo_path=str(tiny_agent_dir), device="cpu", feature_cache=feature_cache,
                               decoder="pyav", **kwargs)


def run(model, dataset, run_name: str, tmp_path: Path, *, in_job: bool, model_name: str = MODEL) -> list[str]:
    """Answers of ``model`` on ``dataset`` through the stand-in loop (wrapped as the launcher wraps it)."""
    run_dir = tmp_path / "outputs" / model_name / "T20260101-000000"
    result_file = run_dir / f"{model_name}_{run_name}.xlsx"
    infer = job_runner(infer_video_job, tmp_path / "outputs") if in_job else infer_video_job
    infer(model, work_dir=str(run_dir), model_name=model_name, dataset=dataset, result_file=str(result_file))
    return [str(p) for p in pd.read_excel(result_file)["prediction"]]


def records_of(answers: list[str]) -> list[IndexRecord]:
    return [IndexRecord.from_dict(json.loads(a)) for a in answers]


CASES = {  # name -> (dataset variant, VIDEO_LLM, K the selection asks for)
    "equal-64": ({"nframe": 64}, True, 64),          # no nframe setter call: the bug of issue 13
    "setter-8": ({"nframe": 8}, True, 8),
    "fps": ({"fps": 1.0}, True, 64),                  # no custom prompt allowed: the dataset builds it
    "frames-64": ({"nframe": 64}, False, 64),         # VIDEO_LLM switched off: frames requested
    "frames-fps": ({"fps": 1.0}, False, 64),
}


@pytest.mark.parametrize("in_job", [True, False], ids=["launcher", "bare"])
@pytest.mark.parametrize("case", list(CASES))
def test_generator_ids_are_the_row_ids_on_every_path(case, in_job, lvbench, lvbench_uids, tiny_agent_dir,
                                                     feature_cache, tmp_path):
    variant, video_llm, k = CASES[case]
    dataset = lvbench_dataset(lvbench, **variant)
    model = generator(tiny_agent_dir, feature_cache, index_out=str(tmp_path / "idx_{task}.jsonl"))
    model.VIDEO_LLM = video_llm
    assert model.nframe == 64
    custom = []
    model_build_prompt = model.build_prompt
    model.build_prompt = lambda *a, **kw: custom.append(1) or model_build_prompt(*a, **kw)
    answers = run(model, dataset, "LVBench_" + case, tmp_path, in_job=in_job)
    assert len(custom) == (len(answers) if "nframe" in variant else 0)
    if case == "frames-fps" and not in_job:
        # frames only and no row: the video is unknown; every answer is a failure VLMEvalKit counts
        assert all(a.startswith(FAIL_MSG) and INFER_FAIL_MARKER in a for a in answers)
        return
    records = records_of(answers)
    assert [r.question_id for r in records] == lvbench_uids
    assert all(len(r.frame_indices) == min(k, 20) for r in records)  # 20 s videos: 20 candidates at 1 fps
    assert {r.benchmark for r in records} == {"lvbench"}
    # the selector got the row's question (the stem), not the prompt with options and instructions
    log = tmp_path / f"idx_LVBench_{case}.jsonl" if in_job else tmp_path / "idx_LVBench.jsonl"
    assert set(read_index(log)) == set(lvbench_uids)


def test_equal_frame_count_after_an_fps_dataset_still_uses_the_custom_prompt(lvbench, lvbench_uids, tiny_agent_dir,
                                                                              feature_cache, tmp_path):
    """The same model object runs several datasets (run.py reuses it): state of an fps dataset
    (nframe setter called with None) must not leak into the next, equal-count dataset."""
    model = generator(tiny_agent_dir, feature_cache, index_out=str(tmp_path / "idx_{task}.jsonl"))
    run(model, lvbench_dataset(lvbench, fps=1.0), "LVBench_1fps", tmp_path, in_job=False)
    records = records_of(run(model, lvbench_dataset(lvbench, nframe=64), "LVBench_64frame", tmp_path, in_job=False))
    assert [r.question_id for r in records] == lvbench_uids
    records = records_of(run(model, lvbench_dataset(lvbench, nframe=8), "LVBench_8frame", tmp_path, in_job=False))
    assert {len(r.frame_indices) for r in records} == {8}
    records = records_of(run(model, lvbench_dataset(lvbench, fps=1.0), "LVBench_1fps", tmp_path, in_job=False))
    assert {len(r.frame_indices) for r in records} == {20}  # back to the model's own 64 (all 20 candidates)


@pytest.mark.parametrize("variant,video_llm", [({"fps": 1.0}, True), ({"fps": 1.0}, False), ({"nframe": 64}, True)],
                         ids=["fps-video", "fps-frames", "equal-64"])
def test_dataset_built_prompts_are_matched_to_their_rows(variant, video_llm, videomme, tiny_agent_dir, feature_cache,
                                                         tmp_path):
    """A Video-MME-like dataset (no id column; ids from the row order) whose own build_prompt makes the message."""
    tsv, root, ids = videomme
    model = generator(tiny_agent_dir, feature_cache)
    model.VIDEO_LLM = video_llm
    records = records_of(run(model, VideoMMEStyle(tsv, root, **variant), "Video-MME_x", tmp_path, in_job=True))
    assert [r.question_id for r in records] == ids
    assert {r.benchmark for r in records} == {"videomme"}
    assert {r.strategy for r in records} == {"bin-max"}  # auto strategy follows the benchmark
    index = tmp_path / "outputs" / f"{MODEL}_Video-MME_x.jsonl"  # <work-dir>/<model>_<dataset>.jsonl
    assert list(read_index(index)) == ids
    report = vlmevalkit_jobs.FINISHED[-1]
    assert report.problems == [] and report.summary.unidentified == 0 and report.summary.label() == "tspo"


def test_unmatched_messages_get_counted_made_up_ids(videomme, tiny_agent_dir, feature_cache, tmp_path):
    """Outside the launcher a dataset-built message has no row: the ids are made up, and a
    generator run with made-up ids is a failure of the job."""
    tsv, root, ids = videomme
    model = generator(tiny_agent_dir, feature_cache, index_out=str(tmp_path / "bare_{task}.jsonl"))
    records = records_of(run(model, VideoMMEStyle(tsv, root, fps=1.0), "Video-MME_1fps", tmp_path, in_job=False))
    assert all(is_fallback_id(r.question_id) for r in records) and len({r.question_id for r in records}) == len(ids)
    summary = vlmevalkit_jobs.summarize("tspo", records)
    assert summary.unidentified == len(ids)
    assert vlmevalkit_jobs.job_problems(summary, True, None) == [
        f"{len(ids)} index records have made-up question ids (no dataset row matched)"]


# ---- index runs --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def precomputed(lvbench, tiny_agent_dir, tmp_path_factory) -> Path:
    """``tspo-eval precompute lvbench`` over the LVBench-style annotation: real uids."""
    from tspo_eval.cli import main

    annotations, videos = lvbench
    out = tmp_path_factory.mktemp("vk_index") / "lvbench_tspo.jsonl"
    assert main(["precompute", "lvbench", str(annotations), "--videos", str(videos), "--out", str(out),
                 "--agent", str(tiny_agent_dir), "--device", "cpu", "--num-frames", "8", "--decoder", "pyav",
                 "--cache-dir", str(out.parent / "cache"), "--quiet"]) == 0
    return out


def test_index_run_takes_every_answer_from_the_index(precomputed, lvbench, lvbench_uids, tiny_agent_dir,
                                                     tmp_path_factory, tmp_path):
    """The issue's 'done means': LVBench_64frame with default settings, index from precompute."""
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    qwen = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("vk_qwen"))
    name = "Qwen2.5-VL-7B-Instruct-TSPO"
    model = TspoVideoLLM(kind="qwen2_5_vl", pretrained=str(qwen), device="cpu", tspo_device="cpu", decoder="pyav",
                         frame_selection="index", frame_index=str(precomputed), max_new_tokens=2)
    answers = run(model, lvbench_dataset(lvbench, nframe=64), "LVBench_64frame", tmp_path, in_job=True,
                  model_name=name)
    assert len(answers) == len(lvbench_uids) and not any(is_failed_answer(a) for a in answers)
    side_log = tmp_path / "outputs" / name / "T20260101-000000" / side_log_name(name, "LVBench_64frame")
    logged = read_index(side_log)
    index = read_index(precomputed)
    assert set(logged) == set(lvbench_uids)
    assert all(r.extra["frame_source"] == "index" for r in logged.values())
    assert all(logged[q].frame_indices == index[q].frame_indices for q in lvbench_uids)
    report = vlmevalkit_jobs.FINISHED[-1]
    assert (report.summary.from_requested, report.summary.answers, report.summary.label()) == (4, 4, "index")
    assert report.problems == []
    assert not list(side_log.parent.glob("*.rank*"))  # per-rank files merged


def test_index_misses_are_counted_labelled_and_fail_when_total(precomputed, lvbench, lvbench_uids, tiny_agent_dir,
                                                               tmp_path, capsys):
    index = read_index(precomputed)
    partial = tmp_path / "partial.jsonl"
    write_index(partial, [index[q] for q in lvbench_uids[1:]])
    model = generator(tiny_agent_dir, None, frame_selection="index", frame_index=str(partial))
    records = records_of(run(model, lvbench_dataset(lvbench, nframe=8), "LVBench_8frame", tmp_path, in_job=True))
    assert [r.extra["frame_source"] for r in records] == ["uniform:missing-from-index"] + ["index"] * 3
    report = vlmevalkit_jobs.FINISHED[-1]
    assert report.summary.label() == "index+uniform(1/4)" and report.problems == []
    assert "3/4 answers from index frames; 1 on uniform frames instead" in report.summary.line(MODEL, "x")

    wrong = tmp_path / "wrong_ids.jsonl"
    write_index(wrong, [IndexRecord(**{**index[q].__dict__, "question_id": f"LVBench:x:{i:010x}"})
                        for i, q in enumerate(lvbench_uids)])
    model = generator(tiny_agent_dir, None, frame_selection="index", frame_index=str(wrong))
    run(model, lvbench_dataset(lvbench, nframe=8), "LVBench_8frame", tmp_path / "b", in_job=True)
    report = vlmevalkit_jobs.FINISHED[-1]
    assert report.summary.label() == "index+uniform(4/4)"
    assert report.problems and "none of the 4 answers took its frames from the index" in report.problems[0]


def test_frameless_answers_carry_vlmevalkit_failure_message(lvbench, tiny_agent_dir, feature_cache, tmp_path):
    annotations, videos = lvbench
    broken = tmp_path / "videos"
    broken.mkdir()
    for video in sorted(videos.glob("*.mp4"))[1:]:   # the first video is missing
        (broken / video.name).symlink_to(video)
    dataset = type("LVBench", (LVBenchMixin, StandInVideoDataset), {})(
        dataset="LVBench", annotations=str(annotations), video_root=str(broken), nframe=64)
    model = generator(tiny_agent_dir, feature_cache)
    answers = run(model, dataset, "LVBench_64frame", tmp_path, in_job=True)
    assert [is_failed_answer(a) for a in answers] == [True, True, False, False]
    assert all(a.startswith(FAIL_MSG) and "not found" in a for a in answers[:2])
    report = vlmevalkit_jobs.FINISHED[-1]
    assert report.summary.frameless == 2 and report.summary.label() == "tspo+frameless(2/4)"
