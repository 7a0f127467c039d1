"""``hf_video_tspo`` and its presets: every supported model family end to end through the real
``python -m lmms_eval`` CLI, with ``batch_size=2``, on ``tspo_synthetic``.

For each family a tiny random checkpoint (real ``save_pretrained`` layout) answers from TSPO
frames; the frames each answer used (read back from lmms-eval's samples file) must equal what
``tspo-eval precompute`` selects with the same agent, and every question must have an answer.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tspo_eval.errors import CheckpointError, InputError
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.frame_records import frames_from_samples

TASKS_DIR = Path(__file__).resolve().parents[1] / "tspo_eval" / "tasks"
K = 4

#: family -> (registered model, builder name in tspo_eval.testing)
FAMILY_RUNS = {
    "qwen2_5_vl": ("qwen2_5_vl_tspo", "build_tiny_qwen2_5_vl"),
    "qwen3_vl": ("qwen3_vl_tspo", "build_tiny_qwen3_vl"),
    "llava_onevision": ("hf_video_tspo", "build_tiny_llava_onevision"),
    "internvl": ("hf_video_tspo", "build_tiny_internvl"),
    "smolvlm": ("hf_video_tspo", "build_tiny_smolvlm2"),
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    root = tmp_path_factory.mktemp("hf_video_bench")
    annotations, videos = build_synthetic_benchmark(root, n_videos=2, questions_per_video=2, seconds=10, fps=5.0)
    return annotations, videos


@pytest.fixture(scope="module")
def env(bench, tmp_path_factory) -> dict[str, str]:
    annotations, videos = bench
    environment = dict(os.environ)
    environment.update(TSPO_EVAL_SYNTHETIC_ANNOTATIONS=str(annotations), TSPO_EVAL_SYNTHETIC_VIDEOS=str(videos),
                       TSPO_EVAL_CACHE_DIR=str(tmp_path_factory.mktemp("hf_video_cache")), HF_HUB_OFFLINE="1",
                       TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return environment


@pytest.fixture(scope="module")
def precomputed(bench, env, tiny_agent_dir, tmp_path_factory) -> dict:
    """``tspo-eval precompute`` of the same questions with the same agent: question id -> IndexRecord."""
    annotations, videos = bench
    out = tmp_path_factory.mktemp("hf_video_precompute") / "index.jsonl"
    cmd = [sys.executable, "-m", "tspo_eval", "precompute", "synthetic", str(annotations), "--videos", str(videos),
           "--out", str(out), "--agent", str(tiny_agent_dir), "--num-frames", str(K), "--device", "cpu",
           "--dtype", "float32"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_index(out)


def _checkpoint(family: str, root: Path) -> Path:
    import tspo_eval.testing as testing

    return getattr(testing, FAMILY_RUNS[family][1])(root / family)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILY_RUNS))
def test_family_answers_from_the_precomputed_frames(family, env, precomputed, tiny_agent_dir, tmp_path):
    if family == "smolvlm" and importlib.util.find_spec("num2words") is None:
        pytest.skip("SmolVLM2's processor needs num2words (test extra)")
    model = FAMILY_RUNS[family][0]
    pretrained = _checkpoint(family, tmp_path)
    out = tmp_path / "out"
    args = (f"pretrained={pretrained},tspo_path={tiny_agent_dir},num_frames={K},max_new_tokens=3,"
            "min_pixels=784,max_pixels=4096,tspo_dtype=float32")
    cmd = [sys.executable, "-m", "lmms_eval", "--model", model, "--model_args", args, "--tasks", "tspo_synthetic",
           "--include_path", str(TASKS_DIR), "--batch_size", "2", "--output_path", str(out), "--log_samples",
           "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, check=False, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    samples = sorted(out.glob("*/*_samples_tspo_synthetic.jsonl"))
    assert len(samples) == 1, f"{model} on {family}: no samples file (lmms-eval exits 0 on failure)\n{log[-4000:]}"
    frames = frames_from_samples(samples[0])
    assert set(frames) == set(precomputed)
    for qid, record in frames.items():
        assert record.frame_indices == precomputed[qid].frame_indices, qid
        assert record.timestamps == precomputed[qid].timestamps, qid
    rows = [json.loads(line) for line in samples[0].read_text().splitlines()]
    assert len(rows) == len(precomputed) and all(isinstance(r["filtered_resps"], (str, list)) for r in rows)
    assert "Model Responding (tspo frames)" in log


def test_presets_refuse_another_family_and_name_the_generic_model(tmp_path):
    from tspo_eval.model_adapters.lmms_eval_hf_video import HFVideoTSPO, Qwen3_VL_TSPO
    from tspo_eval.testing import build_tiny_qwen2_5_vl

    qwen25 = build_tiny_qwen2_5_vl(tmp_path / "qwen25")
    with pytest.raises(CheckpointError, match="is a 'qwen2_5_vl' checkpoint; qwen3_vl_tspo takes qwen3_vl .*hf_video_tspo"):
        Qwen3_VL_TSPO(pretrained=str(qwen25), device="cpu")
    with pytest.raises(InputError, match="hf_video_tspo: pretrained= is required"):
        HFVideoTSPO(device="cpu")
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        HFVideoTSPO(pretrained=str(qwen25), device="cpu", batch_size="auto")
    with pytest.raises(InputError, match="hf_video_tspo: unknown model_args frames_per_second"):
        HFVideoTSPO(pretrained=str(qwen25), frames_per_second=2)


def test_all_models_registered_through_the_entry_point():
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    registry = ModelRegistryV2()
    registry.load_entrypoint_manifests()
    classes = {name: registry.get_model_class(name).__name__
               for name in ("hf_video_tspo", "qwen3_vl_tspo", "qwen2_5_vl_tspo", "llava_vid_tspo")}
    assert classes == {"hf_video_tspo": "HFVideoTSPO", "qwen3_vl_tspo": "Qwen3_VL_TSPO",
                       "qwen2_5_vl_tspo": "Qwen2_5_VL_TSPO", "llava_vid_tspo": "LlavaVidTSPO"}
