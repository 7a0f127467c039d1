"""``tspo-eval vlmevalkit`` against a real VLMEvalKit (its ``run.py``), when one is importable.

VLMEvalKit is not on PyPI and CI cannot fetch it, so this module is skipped there; run it with a
checkout on the path (and its light dependencies installed), e.g.
``PYTHONPATH=/path/to/VLMEvalKit pytest tests/test_vlmevalkit_host.py``.  It checks the issue's
"done means" on ``LVBench_64frame`` with default settings: the generator writes the real uids,
an index run from ``tspo-eval precompute`` takes every answer's frames from the index, and a run
that cannot find its annotations exits non-zero; and that ``--config`` works through the launcher.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("vlmeval") is None,
                                 reason="VLMEvalKit is not importable (not on PyPI; put a checkout on PYTHONPATH)")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_agent_dir):
    from tspo_eval.testing.vlmeval_standin import build_lvbench_style

    root = tmp_path_factory.mktemp("vk_host")
    annotations, videos = build_lvbench_style(root / "data")
    uids = [qa["uid"] for line in annotations.read_text().splitlines() for qa in json.loads(line)["qa"]]
    env = {**os.environ, "LMUData": str(root / "LMUData"), "TSPO_EVAL_CACHE_DIR": str(root / "features"),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return {"root": root, "annotations": annotations, "videos": videos, "uids": uids, "env": env,
            "agent": str(tiny_agent_dir)}


def launch(setup, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tspo_eval", "vlmevalkit", "--lvbench-annotations", str(setup["annotations"]),
               "--lvbench-videos", str(setup["videos"]), "--work-dir", str(setup["root"] / "out"), *args]
    return subprocess.run(command, env=setup["env"], capture_output=True, text=True, timeout=900, check=False)


def test_generator_writes_the_real_uids(setup):
    done = launch(setup, "--model", "TSPO_FrameIndex", "--data", "LVBench_64frame", "--mode", "infer",
                  "--model-args", f"tspo_path={setup['agent']},device=cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    index = setup["root"] / "out" / "TSPO_FrameIndex_LVBench_64frame.jsonl"
    ids = [json.loads(line)["question_id"] for line in index.read_text().splitlines()]
    assert sorted(ids) == sorted(setup["uids"])


def test_index_run_takes_every_answer_from_the_index(setup, tmp_path_factory):
    from tspo_eval.cli import main
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    index = setup["root"] / "precomputed.jsonl"
    assert main(["precompute", "lvbench", str(setup["annotations"]), "--videos", str(setup["videos"]), "--out",
                 str(index), "--agent", setup["agent"], "--device", "cpu", "--quiet"]) == 0
    qwen = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("vk_host_qwen"))
    name = "Qwen2.5-VL-7B-Instruct-TSPO"
    done = launch(setup, "--model", name, "--data", "LVBench_64frame", "--model-args",
                  f"pretrained={qwen},frame_selection=index,frame_index={index},device=cpu,tspo_device=cpu,"
                  "max_new_tokens=2")
    assert done.returncode == 0, done.stderr[-3000:]
    [side_log] = (setup["root"] / "out" / name).glob(f"T*/{name}_LVBench_64frame_tspo_frames.jsonl")
    logged = [json.loads(line) for line in side_log.read_text().splitlines()]
    assert sorted(r["question_id"] for r in logged) == sorted(setup["uids"])
    assert {r["extra"]["frame_source"] for r in logged} == {"index"}
    assert f"{len(setup['uids'])}/{len(setup['uids'])} answers from index frames" in done.stderr


def test_a_run_without_its_annotations_exits_non_zero(setup):
    done = launch(setup, "--model", "TSPO_FrameIndex", "--data", "LVBench_64frame", "--mode", "infer",
                  "--lvbench-annotations", str(setup["root"] / "nowhere.jsonl"))
    assert done.returncode == 1
    assert "VLMEvalKit run failed: TSPO_FrameIndex x LVBench_64frame: lvbench: annotation file not found" in done.stderr


def test_config_files_work_through_the_launcher(setup):
    config = setup["root"] / "cfg.json"
    config.write_text(json.dumps({
        "model": {"Idx16": {"class": "FrameIndexGenerator", "tspo_path": setup["agent"], "device": "cpu",
                            "num_frames": 16}},
        "data": {"LVB_1fps": {"class": "LVBench", "dataset": "LVBench", "fps": 1.0}}}))
    done = launch(setup, "--config", str(config), "--mode", "infer")
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (setup["root"] / "out" / "Idx16_LVB_1fps.jsonl").read_text().splitlines()]
    assert sorted(r["question_id"] for r in records) == sorted(setup["uids"])
    assert {r["benchmark"] for r in records} == {"lvbench"}
