"""Batch precomputation on a synthetic benchmark of real videos with a tiny TSPO agent."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tspo_eval.benchmarks import get_benchmark
from tspo_eval.cli import main
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.precompute import PrecomputeOptions, failures_path, plan_jobs, precompute
from tspo_eval.selector_options import SelectorOptions

N_VIDEOS, PER_VIDEO, K = 4, 3, 8
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> tuple[Path, Path]:
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    return build_synthetic_benchmark(tmp_path_factory.mktemp("synth"), n_videos=N_VIDEOS,
                                     questions_per_video=PER_VIDEO, seconds=20, fps=10.0)


@pytest.fixture(scope="session")
def scorer(tiny_agent_dir):
    from tspo_eval.agent import load_scorer

    return load_scorer("tspo", agent=str(tiny_agent_dir), device="cpu")


def cli_args(synth, out: Path, agent: Path, cache: Path, *extra: str) -> list[str]:
    annotations, videos = synth
    return ["precompute", "synthetic", str(annotations), "--videos", str(videos), "--out", str(out),
            "--agent", str(agent), "--num-frames", str(K), "--cache-dir", str(cache), "--device", "cpu",
            "--no-progress", *extra]


@pytest.fixture(scope="session")
def reference(synth, tiny_agent_dir, tmp_path_factory) -> Path:
    """An uninterrupted single-process run through the CLI."""
    folder = tmp_path_factory.mktemp("reference")
    out = folder / "index.jsonl"
    assert main(cli_args(synth, out, tiny_agent_dir, folder / "cache")) == 0
    return out


class CountingScorer:
    """Wraps a scorer and counts the candidate frames it encodes."""

    def __init__(self, inner) -> None:
        self.inner, self.frames_encoded, self.calls = inner, 0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_frames(self, frames, batch_size: int = 32):
        self.calls += 1
        self.frames_encoded += len(frames)
        return self.inner.encode_frames(frames, batch_size=batch_size)


def test_questions_of_a_video_share_one_encode(synth, scorer, reference, tmp_path):
    from tspo_eval.selection import FrameSelector
    from tspo_eval.video import candidate_grid, open_video

    annotations, videos = synth
    counting = CountingScorer(scorer)
    selector = FrameSelector(counting, cache=False)
    out = tmp_path / "index.jsonl"
    report = precompute(PrecomputeOptions("synthetic", annotations, videos, out, SelectorOptions(num_frames=K),
                                          progress=False),
                        selector=selector)
    candidates = 0
    for name in sorted(os.listdir(videos)):
        with open_video(videos / name) as reader:
            candidates += len(candidate_grid(reader.metadata))
    assert report.encodes == N_VIDEOS and report.written == N_VIDEOS * PER_VIDEO
    assert counting.frames_encoded == candidates  # every candidate encoded exactly once
    # same frames as the reference approach: one select() per question on a fresh selector
    index = read_index(out)
    for job in plan_jobs(get_benchmark("synthetic").load(annotations)):
        for q in job.questions:
            alone = FrameSelector(scorer, cache=False).select(str(videos / job.video), q.question, num_frames=K)
            assert index[q.question_id].frame_indices == alone.frame_indices
    assert out.read_bytes() == reference.read_bytes()  # cache or no cache, same bytes


def test_reference_records_and_determinism(synth, reference, tiny_agent_dir, tmp_path):
    records = list(read_index(reference).values())
    assert len(records) == N_VIDEOS * PER_VIDEO
    assert [(r.video, r.question_id) for r in records] == sorted((r.video, r.question_id) for r in records)
    for r in records:
        assert len(r.frame_indices) == K and r.frame_indices == sorted(r.frame_indices)
        assert all(i % r.candidate_stride == 0 for i in r.frame_indices)  # on the 1 fps grid
        assert r.timestamps == [round(i / r.avg_fps, 6) for i in r.frame_indices]
        assert r.strategy == "topk" and r.scorer == "tspo" and r.agent_fingerprint and r.clip_fingerprint
    again = tmp_path / "again.jsonl"
    assert main(cli_args(synth, again, tiny_agent_dir, tmp_path / "cache")) == 0
    assert again.read_bytes() == reference.read_bytes()
    assert not failures_path(again).exists()
    # a re-run over a finished file writes nothing and keeps the bytes
    assert main(cli_args(synth, again, tiny_agent_dir, tmp_path / "cache")) == 0
    assert again.read_bytes() == reference.read_bytes()


def test_resume_refuses_other_settings_and_limit_works(synth, tiny_agent_dir, tmp_path, capsys):
    out = tmp_path / "index.jsonl"
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache", "--limit", "4")) == 0
    assert list(read_index(out)) == ["synth_000_q0", "synth_000_q1", "synth_000_q2", "synth_001_q0"]
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache", "--strategy", "bin-max")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache", "--strategy", "bin-max",
                         "--overwrite")) == 0
    assert {r.strategy for r in read_index(out).values()} == {"bin-max"}


SLOW_RUN = """
import sys, time
from tspo_eval.precompute import PrecomputeOptions, precompute
from tspo_eval.selection import FrameSelector
from tspo_eval.selector_options import SelectorOptions

class SlowSelector(FrameSelector):
    def select_many(self, *args, **kwargs):
        time.sleep(0.4)
        return super().select_many(*args, **kwargs)

annotations, videos, out, agent = sys.argv[1:5]
from tspo_eval.agent import load_scorer
selector = SlowSelector(load_scorer(agent=agent, device="cpu"), cache=False)
precompute(PrecomputeOptions("synthetic", annotations, videos, out, SelectorOptions(num_frames=NUM_FRAMES),
                             progress=False),
           selector=selector)
""".replace("NUM_FRAMES", str(K))


def test_killed_run_resumes_to_the_same_file(synth, reference, tiny_agent_dir, tmp_path):
    annotations, videos = synth
    out = tmp_path / "index.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(annotations), str(videos), str(out),
                             str(tiny_agent_dir)], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished (or died) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    partial = read_index(out)
    assert 1 <= len(partial) < N_VIDEOS * PER_VIDEO
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache")) == 0
    assert out.read_bytes() == reference.read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_merge_to_the_same_file(synth, reference, tiny_agent_dir, tmp_path):
    out = tmp_path / "index.jsonl"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port)
        cmd = [sys.executable, "-m", "tspo_eval", *cli_args(synth, out, tiny_agent_dir, tmp_path / "cache")]
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert out.read_bytes() == reference.read_bytes()
    assert not list(tmp_path.glob("index.jsonl.rank*"))  # rank files merged and removed


def test_corrupt_and_missing_videos_are_reported(synth, reference, tiny_agent_dir, tmp_path, capsys):
    annotations, videos = synth
    broken = tmp_path / "videos"
    shutil.copytree(videos, broken)
    data = (broken / "synth_001.mp4").read_bytes()
    (broken / "synth_001.mp4").write_bytes(data[: len(data) // 8])  # truncated
    (broken / "synth_002.mp4").unlink()                              # missing
    out = tmp_path / "index.jsonl"
    args = cli_args((annotations, broken), out, tiny_agent_dir, tmp_path / "cache")
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "6 question(s) failed" in printed
    failures = [json.loads(line) for line in failures_path(out).read_text().splitlines()]
    assert {f["video"] for f in failures} == {"synth_001.mp4", "synth_002.mp4"}
    assert len(failures) == 2 * PER_VIDEO and all(f["reason"] for f in failures)
    written = read_index(out)
    expected = {k: v for k, v in read_index(reference).items() if v.video in ("synth_000.mp4", "synth_003.mp4")}
    assert written == expected  # the other videos finished, with the same records
    assert main(args + ["--allow-failures"]) == 0


def test_default_output_is_info_and_each_summary_line_once(synth, reference, tiny_agent_dir, tmp_path, capsys):
    """No DEBUG lines unless -v; the summary line is printed once (stdout), not logged again."""
    cache = reference.parent / "cache"            # the reference run's cache: every video is a cache hit
    for extra, debug_expected in (((), False), (("-v",), True), (("--quiet",), False)):
        out = tmp_path / f"index{len(extra)}{''.join(extra)}.jsonl"
        assert main(cli_args(synth, out, tiny_agent_dir, cache, *extra)) == 0
        captured = capsys.readouterr()
        combined = captured.out + captured.err
        assert combined.count(" written, ") == 1, combined
        assert captured.out.startswith(f"{out}: {N_VIDEOS * PER_VIDEO} written, 0 already done, 0 failed")
        assert ("DEBUG" in captured.err and "feature cache hit" in captured.err) == debug_expected, captured.err
        if extra == ("--quiet",):
            assert captured.err == ""
        else:
            assert "INFO" in captured.err and "loaded TSPO agent" in captured.err
        assert out.read_bytes() == reference.read_bytes()
