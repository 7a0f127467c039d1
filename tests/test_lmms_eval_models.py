"""lmms-eval models ``qwen2_5_vl_tspo`` / ``llava_vid_tspo``: end to end through the real CLI.

Tiny random Qwen2.5-VL and LLaVA-OneVision checkpoints and a tiny TSPO checkpoint are built once
per session; the ``tspo_synthetic`` task runs on 2 real videos (4 questions) plus one question
whose video is missing.  Three CLI runs: ``qwen2_5_vl_tspo`` with TSPO frames on 2 ranks
(torch.distributed.run on CPU: the code path of ``accelerate launch --num_processes 2``, which
starts only one process without a GPU), ``llava_vid_tspo`` (HF backend) with uniform frames and
``selection_log=<folder>``, and the alias ``qwen_2_5_vl_tspo`` with frames from an index file and
``$TSPO_EVAL_SELECTION_LOG``.  The frames of every answer are read from lmms-eval's samples file
(lmms-eval exits 0 even when a run fails, so every check reads the output files).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tspo_eval.errors import CheckpointError, InputError, VideoError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_index_cache.index_store import IndexRecord, IndexWriter
from tspo_eval.frame_records import frames_from_samples
from tspo_eval.frame_source import FrameSource

TASKS_DIR = Path(__file__).resolve().parents[1] / "tspo_eval" / "tasks"
K = 4
MISSING_QID = "missing_q0"


@pytest.fixture(scope="session")
def tiny_vlms(tmp_path_factory) -> dict[str, Path]:
    from tspo_eval.testing.tiny_vlms import (
        build_tiny_llava_onevision,
        build_tiny_qwen2_5_vl,
    )

    root = tmp_path_factory.mktemp("tiny_vlms")
    return {"qwen": build_tiny_qwen2_5_vl(root / "qwen"), "llava": build_tiny_llava_onevision(root / "llava")}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> SimpleNamespace:
    """2 videos x 2 questions, plus one question whose video does not exist."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    root = tmp_path_factory.mktemp("synthetic")
    annotations, videos = build_synthetic_benchmark(root, n_videos=2, questions_per_video=2, seconds=12, fps=5.0)
    rows = json.loads(annotations.read_text())
    rows.append({**rows[0], "question_id": MISSING_QID, "video": "missing_video.mp4"})
    with_missing = root / "with_missing.json"
    with_missing.write_text(json.dumps(rows))
    present = {r["question_id"]: r for r in rows if r["question_id"] != MISSING_QID}
    return SimpleNamespace(annotations=with_missing, videos=videos, rows=present, root=root)


@pytest.fixture(scope="session")
def lmms_env(synthetic, tmp_path_factory) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TSPO_EVAL_SYNTHETIC_ANNOTATIONS=str(synthetic.annotations), TSPO_EVAL_SYNTHETIC_VIDEOS=str(synthetic.videos),
               TSPO_EVAL_CACHE_DIR=str(tmp_path_factory.mktemp("tspo_cache")), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature_cache")


def run_lmms(env: dict[str, str], out: Path, model: str, model_args: str, ranks: int = 1) -> SimpleNamespace:
    """``python -m lmms_eval`` (``ranks`` > 1: under torch.distributed.run) on tspo_synthetic, run in
    ``out/cwd``; outputs parsed (``frames``: the IndexRecords read from the samples file)."""
    launcher = [sys.executable, "-m", "lmms_eval"]
    if ranks > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                    "-m", "lmms_eval"]
    cmd = [*launcher, "--model", model, "--model_args", model_args, "--tasks", "tspo_synthetic",
           "--include_path", str(TASKS_DIR), "--limit", "5", "--output_path", str(out), "--log_samples",
           "--verbosity", "DEBUG", "--device", "cpu"]
    cwd = out / "cwd"
    cwd.mkdir(parents=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, check=False, cwd=cwd)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    results = sorted(out.glob("*/*_results.json"))
    assert len(results) == 1, f"no results file under {out}\n{log[-3000:]}"
    samples = sorted(out.glob("*/*_samples_tspo_synthetic.jsonl"))
    assert len(samples) == 1 and samples[0].name.split("_samples")[0] == results[0].name.split("_results")[0]
    return SimpleNamespace(log=log, results=json.loads(results[0].read_text()), frames=frames_from_samples(samples[0]),
                           side_logs=sorted(p for p in out.rglob("*_frames_*.jsonl")), cwd=cwd,
                           samples=[json.loads(line) for line in samples[0].read_text().splitlines()])


def common_args(tiny_vlms, tiny_agent_dir, feature_cache, which: str) -> str:
    args = f"pretrained={tiny_vlms[which]},tspo_path={tiny_agent_dir},num_frames={K},max_new_tokens=3,feature_cache={feature_cache}"
    return args + (",min_pixels=784,max_pixels=3136" if which == "qwen" else "")


@pytest.fixture(scope="module")
def qwen_tspo(lmms_env, tiny_vlms, tiny_agent_dir, feature_cache, tmp_path_factory):
    args = common_args(tiny_vlms, tiny_agent_dir, feature_cache, "qwen")
    return run_lmms(lmms_env, tmp_path_factory.mktemp("out_qwen"), "qwen2_5_vl_tspo", args, ranks=2)


@pytest.fixture(scope="module")
def llava_uniform(lmms_env, tiny_vlms, tiny_agent_dir, feature_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("out_llava")
    args = common_args(tiny_vlms, tiny_agent_dir, feature_cache, "llava") + f",frame_selection=uniform,selection_log={out}/logs"
    return run_lmms(lmms_env, out, "llava_vid_tspo", args)


def _metric_by_qid(run) -> dict[str, dict]:
    return {s["tspo_accuracy"]["question_id"]: s for s in run.samples}


def test_models_registered_through_the_entry_point():
    from lmms_eval.models import list_available_models
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    names = list_available_models(include_aliases=True)
    assert {"llava_vid_tspo", "qwen2_5_vl_tspo", "qwen_2_5_vl_tspo"} <= set(names)
    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    resolved = registry.resolve("qwen_2_5_vl_tspo")
    assert (resolved.model_id, resolved.model_type) == ("qwen2_5_vl_tspo", "simple")
    assert registry.get_model_class("qwen_2_5_vl_tspo").__name__ == "Qwen2_5_VL_TSPO"
    assert registry.get_model_class("llava_vid_tspo").__name__ == "LlavaVidTSPO"
    # the entry-point module must not pull in torch / transformers (one failing plug-in disables all)
    probe = "import sys, tspo_eval.model_adapters.lmms_eval_manifest as m; m.model_manifests(); " \
            "print(sorted(k for k in ('torch', 'transformers', 'numpy') if k in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_qwen_tspo_run_writes_results_metric_and_frames(qwen_tspo, synthetic):
    assert "tspo_accuracy,none" in qwen_tspo.results["results"]["tspo_synthetic"]
    assert len(qwen_tspo.samples) == 5
    # both ranks' answers carry their frames in the one samples file (each rank's process recorded
    # its own documents); a tspo_* task needs no side log, so none was written anywhere
    assert set(qwen_tspo.frames) == set(synthetic.rows)
    assert qwen_tspo.side_logs == [] and not (qwen_tspo.cwd / "tspo_selection_logs").exists()
    for qid, record in qwen_tspo.frames.items():
        assert len(record.frame_indices) == K and record.video == synthetic.rows[qid]["video"]
        assert record.timestamps == pytest.approx([i / record.avg_fps for i in record.frame_indices])
        assert (record.strategy, record.scorer, record.benchmark) == ("topk", "tspo", "synthetic")
        assert record.extra == {"frame_source": "tspo"} and record.agent_fingerprint
    assert "Model Responding (tspo frames)" in qwen_tspo.log


def test_missing_video_is_scored_wrong_and_counted(qwen_tspo):
    sample = _metric_by_qid(qwen_tspo)[MISSING_QID]
    assert sample["tspo_accuracy"]["correct"] is False and sample["tspo_accuracy"]["pred"] is None
    assert sample["tspo_accuracy"]["frames"] is None and "missing_video.mp4" in sample["tspo_accuracy"]["frames_error"]
    assert sample["filtered_resps"] in ("", [""])
    assert "missing_video.mp4" in qwen_tspo.log
    assert "all ranks: 1 of 5 samples failed" in qwen_tspo.log
    assert MISSING_QID not in qwen_tspo.frames


def test_logged_frames_equal_tspo_eval_select(qwen_tspo, synthetic, tiny_agent_dir, feature_cache, lmms_env):
    qid = max(synthetic.rows)
    row = synthetic.rows[qid]
    cmd = [sys.executable, "-m", "tspo_eval", "select", str(synthetic.videos / row["video"]), "--question",
           row["question"], "--agent", str(tiny_agent_dir), "-k", str(K), "--strategy", "topk", "--json",
           "--device", "cpu", "--cache-dir", str(feature_cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=lmms_env, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    selected = json.loads(proc.stdout.strip().splitlines()[-1])
    assert qwen_tspo.frames[qid].frame_indices == selected["frame_indices"]
    assert qwen_tspo.frames[qid].timestamps == pytest.approx(selected["timestamps"])
    # every other question: the same selector in-process (as `tspo-eval select` builds it)
    from tspo_eval.selection import FrameSelector
    from tspo_eval.selector_options import SelectorOptions

    selector = FrameSelector.build(SelectorOptions(agent=str(tiny_agent_dir), device="cpu", cache_dir=str(feature_cache)))
    for other, row in synthetic.rows.items():
        expected = selector.select(synthetic.videos / row["video"], row["question"], num_frames=K, strategy="topk")
        assert qwen_tspo.frames[other].frame_indices == expected.frame_indices, other


def test_llava_vid_tspo_hf_backend_uniform_end_to_end(llava_uniform):
    assert "tspo_accuracy,none" in llava_uniform.results["results"]["tspo_synthetic"]
    assert "1 of 5 samples failed" in llava_uniform.log and MISSING_QID not in llava_uniform.frames
    assert len(llava_uniform.frames) == 4
    assert "Model Responding (uniform frames)" in llava_uniform.log and "TSPO frames" not in llava_uniform.log
    # selection_log=<folder> asks for a side log of every task: named after the frame selection, same frames
    (side_log,) = llava_uniform.side_logs
    assert side_log.parent.name == "logs" and side_log.name.endswith("_llava_vid_tspo_uniform_frames_tspo_synthetic.jsonl")
    assert f"frames of task tspo_synthetic are logged to {side_log}" in llava_uniform.log
    assert {q: r.frame_indices for q, r in read_index(side_log).items()} == \
        {q: r.frame_indices for q, r in llava_uniform.frames.items()}
    for record in llava_uniform.frames.values():  # 12 s at 5 fps: grid 0, 5, ..., 55; K=4 evenly spaced candidates
        grid = np.arange(0, record.n_frames, 5)
        expected = grid[np.round(np.linspace(0, len(grid) - 1, K)).astype(int)].tolist()
        assert record.frame_indices == expected == [0, 20, 35, 55]
        assert (record.strategy, record.extra) == ("uniform", {"frame_source": "uniform"})
    # LLaVA-Video's time preamble with the frames' real times is in the prompt (logged at DEBUG)
    assert "4 frames are sampled from it. These frames are located at 0.00s,4.00s,7.00s,11.00s." in llava_uniform.log


def test_index_mode_through_the_alias_logs_exactly_the_indexed_frames(lmms_env, tiny_vlms, tiny_agent_dir,
                                                                       feature_cache, synthetic, tmp_path):
    qids = sorted(synthetic.rows)
    chosen = {qid: [1 + i, 13 + i, 29 + i, 58 - i] for i, qid in enumerate(qids[:-1])}  # off-grid on purpose
    index = tmp_path / "index.jsonl"
    with IndexWriter(index) as writer:
        for qid, frames in chosen.items():
            writer.write(IndexRecord(benchmark="synthetic", question_id=qid, video=synthetic.rows[qid]["video"],
                                     n_frames=60, avg_fps=5.0, candidate_stride=5, frame_indices=frames,
                                     timestamps=[f / 5.0 for f in frames], strategy="topk", scorer="tspo",
                                     agent_fingerprint="a", clip_fingerprint="c"))
    args = common_args(tiny_vlms, tiny_agent_dir, feature_cache, "qwen") + f",frame_selection=index,frame_index={index}"
    env = {**lmms_env, "TSPO_EVAL_SELECTION_LOG": str(tmp_path / "env_logs" / "{task}.jsonl")}
    run = run_lmms(env, tmp_path / "out", "qwen_2_5_vl_tspo", args)
    assert "Model Responding (index frames)" in run.log
    side_log = tmp_path / "env_logs" / "tspo_synthetic.jsonl"  # $TSPO_EVAL_SELECTION_LOG names it exactly
    assert run.side_logs == [] and set(read_index(side_log)) == set(run.frames)
    assert "tspo_accuracy,none" in run.results["results"]["tspo_synthetic"]
    assert run.results["config"]["model"] == "qwen_2_5_vl_tspo"
    for qid, frames in chosen.items():
        assert run.frames[qid].frame_indices == frames
        assert run.frames[qid].timestamps == pytest.approx([f / 5.0 for f in frames])
        assert run.frames[qid].extra == {"frame_source": "index"}
    left_out = run.frames[qids[-1]]  # not in the index: missing=uniform
    assert left_out.frame_indices == [0, 20, 35, 55] and left_out.extra == {"frame_source": "uniform:missing-from-index"}


def test_unknown_model_args_are_clear_errors(tiny_vlms):
    from tspo_eval.model_adapters.lmms_eval_hf_video import Qwen2_5_VL_TSPO
    from tspo_eval.model_adapters.lmms_eval_llava_vid import LlavaVidTSPO

    with pytest.raises(InputError, match="qwen2_5_vl_tspo: unknown model_args bogus"):
        Qwen2_5_VL_TSPO(pretrained=str(tiny_vlms["qwen"]), bogus=1)
    with pytest.raises(InputError, match="llava_vid_tspo: unknown model_args max_frames_num"):
        LlavaVidTSPO(pretrained=str(tiny_vlms["llava"]), max_frames_num=8)
    with pytest.raises(InputError, match="backend"):
        LlavaVidTSPO(pretrained=str(tiny_vlms["llava"]), backend="vllm")
    with pytest.raises(InputError, match="qwen2_5_vl_tspo: frame_selection='best' is not one of tspo, index, uniform"):
        Qwen2_5_VL_TSPO(pretrained=str(tiny_vlms["qwen"]), frame_selection="best")
    with pytest.raises(InputError, match="no such index file"):
        LlavaVidTSPO(pretrained=str(tiny_vlms["llava"]), frame_selection="index", frame_index="/nonexistent.jsonl")


def test_llava_backend_is_chosen_from_the_checkpoint_config(tiny_vlms, tmp_path):
    from tspo_eval.model_adapters.lmms_eval_llava_vid import (
        LlavaVidTSPO,
        checkpoint_backend,
        llava_package_available,
    )

    assert checkpoint_backend(str(tiny_vlms["llava"])) == "hf"
    original = tmp_path / "LLaVA-Video-7B-Qwen2"
    original.mkdir()
    (original / "config.json").write_text(json.dumps({"model_type": "llava_qwen", "architectures": ["LlavaQwenForCausalLM"]}))
    assert checkpoint_backend(str(original)) == "llava"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="bert"):
        checkpoint_backend(str(tmp_path / "other"))
    if not llava_package_available():
        with pytest.raises(CheckpointError, match="LLaVA-NeXT `llava` package"):
            LlavaVidTSPO(pretrained=str(original))


def test_llava_next_delegate_feeds_our_frames(make_video, tmp_path):
    """lmms-eval's llava_vid calls ``self.load_video(path, max_frames_num, fps, force_sample)`` and
    turns an exception into an error answer; the delegate must serve our frames through that hook."""
    from tspo_eval.model_adapters.lmms_eval_llava_vid import LlavaNextFrames

    class LlavaVidContract:  # the part of lmms_eval.models.simple.llava_vid.LlavaVid the delegate relies on
        max_frames_num, video_decode_backend = 64, "pyav"

        def generate_until(self, requests):
            out = []
            for request in requests:
                try:
                    self.loaded = self.load_video(request.args[0], self.max_frames_num, 1, force_sample=False)
                    out.append("A")
                except Exception as exc:  # noqa: BLE001 - as llava_vid does
                    out.append(f"Video {request.args[0]} can not load, check the source ({exc})")
            return out

    video = make_video("delegate.mp4", n_frames=60, fps=10.0)
    inner = LlavaVidContract()
    delegate = LlavaNextFrames(inner, FrameSource.from_options("uniform", num_frames=3))
    assert inner.video_decode_backend == "decord"
    answer, error = delegate.answer(SimpleNamespace(args=(str(video),)), "q", "d1", "mlvu_dev")
    frames, times, seconds = inner.loaded
    assert (answer, error) == ("A", None)
    assert frames.shape[0] == 3 and times == "0.00s,2.00s,5.00s" and seconds == pytest.approx(6.0)
    answer, error = delegate.answer(SimpleNamespace(args=(str(tmp_path / "gone.mp4"),)), "q", "d2", "mlvu_dev")
    assert isinstance(error, VideoError) and "gone.mp4" in str(error)


def test_qwen_frames_carry_their_real_timing(tiny_vlms):
    from tspo_eval.answering import AnswerRequest
    from tspo_eval.answering.hf_video import HFVideoAnswerer
    from tspo_eval.answering.qwen_pixels import frame_size

    answerer = HFVideoAnswerer.from_pretrained(str(tiny_vlms["qwen"]), device="cpu", min_pixels=784, max_pixels=3136)
    # 4 frames chosen from a 10 s video (300 frames at 30 fps): mean spacing 2.5 s per frame
    request = AnswerRequest(np.zeros((4, 56, 56, 3), dtype=np.uint8), [0, 30, 150, 270], [0.0, 1.0, 5.0, 9.0],
                            n_frames=300, avg_fps=30.0, prompt="q")
    inputs = answerer.build_inputs([request])
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]
    assert float(inputs["second_per_grid_ts"][0]) == pytest.approx(2 * 10.0 / 4)
    # qwen-vl-utils' budget: 64 full-HD frames are capped at 768 tokens each, sides multiples of 28
    h, w = frame_size(64, 1080, 1920, factor=28, min_pixels=256 * 28 * 28, max_pixels=1605632, total_pixels=90316800)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 768 * 28 * 28 and abs(w / h - 1920 / 1080) < 0.1


@pytest.mark.parametrize(
    "task, doc, expected",
    [
        ("longvideobench_val_v", {"id": "86CxyhFV9MI_0", "question": "What is shown?", "video_path": "86CxyhFV9MI.mp4"},
         ("What is shown?", "86CxyhFV9MI_0")),
        ("videomme", {"question_id": "001-1", "video_id": "001", "videoID": "fFjv93ACGo8", "question": "When?"},
         ("When?", "001-1")),
        ("mlvu_dev", {"question_id": "Q0", "video_name": "needle_32.mp4", "question": "What does it do?\n(A) x\n(B) y"},
         ("What does it do?\n(A) x\n(B) y", "Q0")),
        ("lvbench", {"uid": "55", "key": "Cm73ma6Ibcs", "question": "What year?\n(A) 1636"}, ("What year?\n(A) 1636", "55")),
        ("some_other_task", {"video": "v.mp4"}, ("the prompt", "some_other_task:7")),
    ],
)
def test_question_and_id_from_builtin_task_docs(task, doc, expected):
    from tspo_eval.model_adapters.lmms_eval_common import doc_question

    assert doc_question(task, doc, 7, "the prompt") == expected


def test_task_exit_on_missing_video_becomes_a_video_error(tmp_path):
    from tspo_eval.model_adapters.lmms_eval_common import doc_video

    def exits(doc):  # what lmms-eval's videomme / mlvu doc_to_visual do for a missing file
        sys.exit(f"video path:{doc['path']} does not exist, please check")

    with pytest.raises(VideoError, match="gone.mp4 does not exist"):
        doc_video("videomme", 3, {"path": "gone.mp4"}, exits)
    with pytest.raises(VideoError, match="no such video file"):
        doc_video("tspo_synthetic", 0, {}, lambda doc: [str(tmp_path / "gone.mp4")])
    real = tmp_path / "v.mp4"
    real.write_bytes(b"x")
    assert doc_video("tspo_synthetic", 0, {}, lambda doc: [str(real)]) == str(real)


def test_side_log_names_and_rank_merge(tmp_path, monkeypatch):
    """Built-in tasks get a side log named after the frame selection (default folder, explicit
    folder or file, or $TSPO_EVAL_SELECTION_LOG); tspo_* tasks only when it was asked for."""
    from loguru import logger

    from tspo_eval.model_adapters.lmms_eval_side_log import (
        SideLog,
        explicit_selection_log,
        merge_rank_logs,
        side_log_template,
    )

    assert side_log_template(None, "qwen2_5_vl_tspo", "uniform", "20261121_101010", 1) == \
        str(Path("tspo_selection_logs") / "20261121_101010_qwen2_5_vl_tspo_uniform_frames_{task}.jsonl")
    assert side_log_template(str(tmp_path / "logs"), "m", "index", "S", 1) == str(tmp_path / "logs" / "S_m_index_frames_{task}.jsonl")
    assert side_log_template(str(tmp_path / "a_{task}.jsonl"), "m", "tspo", "S", 1) == str(tmp_path / "a_{task}.jsonl")
    template = side_log_template(str(tmp_path / "m"), "m", "tspo", "S", 2)
    assert template == str(tmp_path / "m" / "S_m_tspo_frames_{task}.rank{rank}.jsonl")
    monkeypatch.setenv("TSPO_EVAL_SELECTION_LOG", "/from/env.jsonl")
    assert explicit_selection_log(None) == "/from/env.jsonl" and explicit_selection_log("/arg") == "/arg"
    monkeypatch.delenv("TSPO_EVAL_SELECTION_LOG")
    assert explicit_selection_log(None) is None

    def record(qid: str) -> IndexRecord:
        return IndexRecord(benchmark="b", question_id=qid, video="v.mp4", n_frames=10, avg_fps=1.0, candidate_stride=1,
                           frame_indices=[1], timestamps=[1.0], strategy="topk", scorer="tspo", agent_fingerprint="",
                           clip_fingerprint="")

    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    try:
        default_log = SideLog(str(tmp_path / "d_{task}.jsonl"), explicit=False)
        for qid in ("q1", "q2"):
            default_log.write(record(qid), "videomme")
            default_log.write(record(qid), "tspo_videomme")  # its samples file holds the frames
        default_log.close()
    finally:
        logger.remove(sink)
    assert list(read_index(tmp_path / "d_videomme.jsonl")) == ["q1", "q2"]
    assert not (tmp_path / "d_tspo_videomme.jsonl").exists()
    announced = [m for m in messages if "are logged to" in m]
    assert announced == [f"frames of task videomme are logged to {tmp_path / 'd_videomme.jsonl'}"]  # once
    assert SideLog(str(tmp_path / "e_{task}.jsonl"), explicit=True).wants("tspo_videomme")
    # two ranks' files of one task are merged into one, ordered, and the rank files removed
    for rank, qids in ((0, ["q2", "q10"]), (1, ["q1"])):
        with IndexWriter(template.format(task="t", rank=rank)) as writer:
            for qid in qids:
                writer.write(record(qid))
    merged = merge_rank_logs(template)
    assert [p.name for p in merged] == ["S_m_tspo_frames_t.jsonl"]
    assert list(read_index(merged[0])) == ["q1", "q2", "q10"]
    assert not list((tmp_path / "m").glob("*.rank*"))


def test_qwen_processor_gets_the_pixel_budget_without_future_warning(tiny_vlms):
    import warnings

    from tspo_eval.answering import AnswerRequest
    from tspo_eval.answering.hf_video import HFVideoAnswerer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answerer = HFVideoAnswerer.from_pretrained(str(tiny_vlms["qwen"]), device="cpu", min_pixels=784,
                                                   max_pixels=3136, total_pixels=10**7)
        request = AnswerRequest(np.zeros((4, 112, 112, 3), dtype=np.uint8), [0, 20, 35, 55], [0.0, 4.0, 7.0, 11.0],
                                n_frames=60, avg_fps=5.0, prompt="q")
        inputs = answerer.build_inputs([request])
    future = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert future == []
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4]]  # 112x112 frames cut to 56x56 by max_pixels=3136
