"""Lookahead inside lmms-eval's ``generate_until`` (qwen2_5_vl_tspo, tiny random checkpoints, real
lmms-eval ``Instance`` requests): same frames and cache entries as ``lookahead=0``, a broken video
fails only its own questions, and no background thread outlives the call, also when it raises."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tspo_eval.frame_records import FRAME_BOOK

TASK, SPLIT = "tspo_synthetic", "test"
QUESTIONS = ("When does the bar reach the right edge?\nA. early\nB. late", "What colour is the screen at the end?")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory) -> Path:
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("qwen") / "qwen")


@pytest.fixture(scope="module")
def host_videos(make_video, tmp_path_factory) -> list[Path]:
    videos = [make_video(f"host_ahead_{i}.mp4", n_frames=40 + 10 * i, fps=10.0, width=64, height=48, gop=20)
              for i in range(3)]
    broken = tmp_path_factory.mktemp("broken") / "broken.mp4"
    broken.write_bytes(b"\x00not a video" * 200)
    return [videos[0], broken, videos[1], videos[2]]


def _model(tiny_qwen: Path, agent: Path, cache: Path, lookahead: int):
    from tspo_eval.model_adapters.lmms_eval_hf_video import Qwen2_5_VL_TSPO

    return Qwen2_5_VL_TSPO(pretrained=str(tiny_qwen), device="cpu", tspo_path=str(agent), num_frames=3,
                           candidate_fps=5.0, decoder="pyav", feature_cache=str(cache), lookahead=lookahead,
                           max_pixels=3136, min_pixels=784, max_new_tokens=2, selection_log=str(cache / "log.jsonl"))


def _requests(model, videos: list[Path], tag: str):
    from lmms_eval.api.instance import Instance

    docs, requests = [], []
    for v, video in enumerate(videos):
        for q, question in enumerate(QUESTIONS):
            doc_id = len(docs)
            docs.append({"question_id": f"{tag}_v{v}_q{q}", "question": question, "video": str(video)})
            requests.append(Instance(request_type="generate_until", idx=0,
                                     metadata={"task": TASK, "doc_id": doc_id, "repeats": 1},
                                     arguments=(question, {"max_new_tokens": 2}, lambda doc: [doc["video"]], doc_id,
                                                TASK, SPLIT)))
    model.task_dict = {TASK: {SPLIT: docs}}
    return requests


def _frames(tag: str, videos: list[Path]) -> dict[str, object]:
    out = {}
    for v in range(len(videos)):
        for q in range(len(QUESTIONS)):
            entry = FRAME_BOOK.entry(TASK, f"{tag}_v{v}_q{q}")
            out[f"v{v}_q{q}"] = entry["frames"]["frame_indices"] if entry["frames"] else entry.get("frames_error")
    return out


def _cache_entries(cache: Path) -> dict[str, tuple[dict, bytes]]:
    from safetensors import safe_open

    entries = {}
    for path in sorted(cache.rglob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            tensors = b"".join(fh.get_tensor(k).numpy().tobytes() for k in sorted(fh.keys()))
            entries[path.name] = (fh.metadata(), tensors)
    return entries


def _lookahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tspo-lookahead"]


def test_generate_until_with_lookahead_same_frames_and_errors_only_at_their_video(tiny_qwen, tiny_agent_dir,
                                                                                 host_videos, tmp_path):
    runs = {}
    for depth in (0, 2):
        cache = tmp_path / f"cache{depth}"
        model = _model(tiny_qwen, tiny_agent_dir, cache, depth)
        answers = model.generate_until(_requests(model, host_videos, f"d{depth}"))
        assert not _lookahead_threads()
        stats = model.frame_source.lookahead_stats
        if depth:  # the background prepared videos (the broken one failed there) and the foreground used them
            assert stats.prepared + stats.failed + stats.taken_over == len(host_videos) and stats.prepared >= 1
            assert stats.max_ahead <= 2
        else:
            assert stats is None
        runs[depth] = (answers, _frames(f"d{depth}", host_videos), _cache_entries(cache), model.failures.items)
    answers0, frames0, cache0, failed0 = runs[0]
    assert [qid for _, qid, _ in failed0] == ["d0_v1_q0", "d0_v1_q1"]
    answers2, frames2, cache2, failed2 = runs[2]
    assert frames2 == frames0 and answers2 == answers0
    assert cache2 == cache0 and len(cache0) == 3  # the 3 readable videos, same keys and bytes
    # the broken video (second) fails exactly its own 2 questions, naming the file; the rest answer
    assert [qid for _, qid, _ in failed2] == ["d2_v1_q0", "d2_v1_q1"]
    assert all("broken.mp4" in error for _, _, error in failed2)
    assert all(isinstance(frames2[k], list) and len(frames2[k]) == 3 for k in frames2 if not k.startswith("v1_"))
    assert [a == "" for a in answers2] == [False, False, True, True, False, False, False, False]


def test_no_thread_outlives_generate_until_when_answering_raises(tiny_qwen, tiny_agent_dir, host_videos, tmp_path):
    model = _model(tiny_qwen, tiny_agent_dir, tmp_path / "cache", 2)
    calls = []

    def failing(requests, batch_size=1):
        calls.append(len(requests))
        raise RuntimeError("the VLM ran out of memory")

    model.answerer.answer = failing
    with pytest.raises(RuntimeError, match="out of memory"):
        model.generate_until(_requests(model, host_videos, "boom"))
    assert calls == [1]
    assert not _lookahead_threads()
    assert model.frame_source._lookahead is None


def test_lookahead_is_off_for_uniform_frames_and_without_a_cache(tiny_qwen, tiny_agent_dir, host_videos, tmp_path):
    from tspo_eval.model_adapters.lmms_eval_hf_video import Qwen2_5_VL_TSPO

    uniform = Qwen2_5_VL_TSPO(pretrained=str(tiny_qwen), device="cpu", frame_selection="uniform", num_frames=3,
                              decoder="pyav", lookahead=2, max_pixels=3136, min_pixels=784, max_new_tokens=2,
                              selection_log=str(tmp_path / "u.jsonl"))
    assert not uniform.frame_source.lookahead_wanted
    no_cache = _model(tiny_qwen, tiny_agent_dir, tmp_path / "c", 2)
    assert no_cache.frame_source.lookahead_wanted
    from tspo_eval.model_adapters.lmms_eval_hf_video import Qwen2_5_VL_TSPO as Q

    off = Q(pretrained=str(tiny_qwen), device="cpu", tspo_path=str(tiny_agent_dir), num_frames=3, decoder="pyav",
            feature_cache="off", lookahead=2, max_pixels=3136, min_pixels=784, max_new_tokens=2,
            selection_log=str(tmp_path / "o.jsonl"))
    assert not off.frame_source.lookahead_wanted
    assert uniform.generate_until(_requests(uniform, host_videos[:1], "uni"))[0] is not None
    assert not _lookahead_threads()


# ---- VLMEvalKit: the job's table says which videos come next --------------------------------------
def _vlmeval_run(model, dataset, tmp_path: Path, name: str) -> list[dict]:
    import json

    import pandas as pd

    from tspo_eval.model_adapters.vlmevalkit_jobs import job_runner
    from tspo_eval.testing.vlmeval_standin import infer_video_job

    run_dir = tmp_path / "outputs" / name
    result_file = run_dir / f"TSPO_FrameIndex_{name}.xlsx"
    job_runner(infer_video_job, tmp_path / "outputs")(model, work_dir=str(run_dir), model_name="TSPO_FrameIndex",
                                                      dataset=dataset, result_file=str(result_file))
    return [json.loads(str(p)) for p in pd.read_excel(result_file)["prediction"]]


def test_vlmevalkit_job_looks_ahead_along_its_table(tiny_agent_dir, tmp_path, monkeypatch):
    from tspo_eval.model_adapters.vlmevalkit_lvbench import LVBenchMixin
    from tspo_eval.model_adapters.vlmevalkit_models import FrameIndexGenerator
    from tspo_eval.testing.vlmeval_standin import (
        StandInVideoDataset,
        build_lvbench_style,
    )

    monkeypatch.setenv("LMUData", str(tmp_path / "LMUData"))
    annotations, videos = build_lvbench_style(tmp_path / "lvb", n_videos=3, questions_per_video=2)
    cls = type("LVBench", (LVBenchMixin, StandInVideoDataset), {})
    runs = {}
    for depth in (0, 2):
        dataset = cls(dataset="LVBench", annotations=str(annotations), video_root=str(videos), nframe=4)
        model = FrameIndexGenerator(tspo_path=str(tiny_agent_dir), device="cpu", decoder="pyav", lookahead=depth,
                                    feature_cache=str(tmp_path / f"cache{depth}"),
                                    index_out=str(tmp_path / f"i{depth}.jsonl"))
        records = _vlmeval_run(model, dataset, tmp_path, f"LVBench_d{depth}")
        assert not _lookahead_threads()  # the job wrapper stopped it
        runs[depth] = (records, model.frame_source.lookahead_stats)
    (plain, no_stats), (ahead, stats) = runs[0], runs[2]
    assert no_stats is None and stats.prepared >= 1 and stats.max_ahead <= 2
    assert [(r["question_id"], r["frame_indices"]) for r in ahead] == [(r["question_id"], r["frame_indices"])
                                                                        for r in plain]
    assert _cache_entries(tmp_path / "cache2") == _cache_entries(tmp_path / "cache0")


def test_upcoming_rows_follow_this_ranks_rows_and_skip_repeats():
    from types import SimpleNamespace

    import pandas as pd

    from tspo_eval.model_adapters.vlmevalkit_lookahead import UpcomingRows
    from tspo_eval.model_adapters.vlmevalkit_messages import VideoQuery

    table = pd.DataFrame({"video": ["a", "a", "b", "c", "c", "d", "e", "f"],
                          "question": ["qa1", "qa2", "qb", "qc1", "qc2", "qd", "qe", "qf"]})
    def build_prompt(row: int, video_llm: bool) -> list[dict]:
        return [{"type": "video", "value": f"/v/{table.video[row]}.mp4"}]

    dataset = SimpleNamespace(data=table, dataset_name="T", build_prompt=build_prompt)

    def query(video: str, question: str) -> VideoQuery:
        return VideoQuery(prompt=question, video=f"/v/{video}.mp4", question=question, question_id="x", identified=True)

    one = UpcomingRows(SimpleNamespace(dataset=dataset, dataset_name="T", world_size=1))
    assert one.videos_after(query("a", "qa1"), 2) == ["/v/b.mp4", "/v/c.mp4"]
    assert one.videos_after(query("c", "qc2"), 5) == ["/v/d.mp4", "/v/e.mp4", "/v/f.mp4"]
    two = UpcomingRows(SimpleNamespace(dataset=dataset, dataset_name="T", world_size=2))  # rank rows 1, 3, 5, 7
    assert two.videos_after(query("a", "qa2"), 3) == ["/v/c.mp4", "/v/d.mp4", "/v/f.mp4"]
    assert one.videos_after(query("zzz", "?"), 2) == []
