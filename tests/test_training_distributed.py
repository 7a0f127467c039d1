"""Two ranks under torchrun (gloo, CPU) give the weights of one rank with the same global batch."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_match_one_rank(tiny_agent_dir, tmp_path) -> None:
    from safetensors.torch import load_file

    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    ann, videos = build_synthetic_benchmark(tmp_path / "data", n_videos=4, questions_per_video=1, seconds=40,
                                            fps=4.0, seed=5)
    common = ["train", "synthetic", str(ann), "--videos", str(videos), "--answerer", "synthetic-reader",
              "--init", str(tiny_agent_dir), "--steps", "3", "--prompts-per-step", "4", "--group-size", "6",
              "--num-frames", "4", "--decoder", "pyav", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
              "--off-policy", "shaping", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    one = subprocess.run([sys.executable, "-m", "tspo_eval", *common, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), "-m", "tspo_eval", *common, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=600, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "selector.safetensors"))
    b = load_file(str(tmp_path / "two" / "selector.safetensors"))
    initial = load_file(str(tiny_agent_dir / "model.safetensors"))
    assert not torch.equal(a["selector.mlp.0.weight"], initial["selector.mlp.0.weight"])
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-7), key
    exact = all(torch.equal(a[k], b[k]) for k in a)
    print("bitwise equal:", exact)
    metrics_one = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    metrics_two = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics_one) == len(metrics_two) == 3
    import json

    for m1, m2 in zip(map(json.loads, metrics_one), map(json.loads, metrics_two)):
        assert m1["prompts"] == m2["prompts"] == 4
        assert m1["reward_mean"] == pytest.approx(m2["reward_mean"]) and m1["r_a"] == pytest.approx(m2["r_a"])
