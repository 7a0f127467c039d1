"""``precompute --workers N``: worker processes decode and CLIP-preprocess candidates; the output,
the failures and the feature cache do not depend on N; a dying worker costs one video; no worker
outlives the run (Ctrl-C, SIGTERM, SIGKILL of the parent); a killed run resumes."""
from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors import safe_open

from tspo_eval.cli import main
from tspo_eval.frame_index_cache.index_files import read_index
from tspo_eval.precompute import failures_path

N_VIDEOS, PER_VIDEO, K = 5, 2, 6
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, Path]:
    """5 videos of 12-28 s (different lengths, so workers finish in a scrambled order)."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    return build_synthetic_benchmark(tmp_path_factory.mktemp("synth_w"), n_videos=N_VIDEOS,
                                     questions_per_video=PER_VIDEO, seconds=16, fps=10.0)


def cli_args(synth, out: Path, agent: Path, cache: Path, *extra: str) -> list[str]:
    annotations, videos = synth
    return ["precompute", "synthetic", str(annotations), "--videos", str(videos), "--out", str(out),
            "--agent", str(agent), "--num-frames", str(K), "--cache-dir", str(cache), "--device", "cpu",
            "--no-progress", *extra]


def cache_entries(folder: Path) -> dict[str, tuple[bytes, dict]]:
    """file name -> (feature bytes, metadata) of every feature-cache entry.  (safetensors writes its
    metadata map in a per-process hash order, so whole files differ between any two processes.)"""
    out = {}
    for path in sorted(folder.rglob("*.safetensors")):
        with safe_open(str(path), "pt") as fh:
            (name,) = list(fh.keys())
            out[path.name] = (fh.get_tensor(name).numpy().tobytes(), fh.metadata())
    return out


@pytest.fixture(scope="module")
def serial(synth, tiny_agent_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serial")
    assert main(cli_args(synth, folder / "index.jsonl", tiny_agent_dir, folder / "cache", "--workers", "1")) == 0
    return folder


@pytest.mark.parametrize("workers,preprocess_in_workers", [(2, False), (3, False), (2, True)])
def test_workers_give_byte_identical_output_and_cache(synth, serial, tiny_agent_dir, tmp_path, workers,
                                                      preprocess_in_workers, monkeypatch):
    """Workers that ship uint8 frames (few workers) or CLIP pixel values (many): the same bytes."""
    import tspo_eval.candidate_pool as pool

    monkeypatch.setattr(pool, "PREPROCESS_IN_WORKERS_FROM", 2 if preprocess_in_workers else 4)
    out = tmp_path / "index.jsonl"
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache", "--workers", str(workers))) == 0
    assert out.read_bytes() == (serial / "index.jsonl").read_bytes()
    mine, theirs = cache_entries(tmp_path / "cache"), cache_entries(serial / "cache")
    assert len(theirs) == N_VIDEOS and mine.keys() == theirs.keys()  # same CacheKey digests
    assert mine == theirs                                              # same feature bytes and metadata
    # a second run hits the cache (workers report "cached", nothing is decoded) and keeps the bytes
    again = tmp_path / "again.jsonl"
    assert main(cli_args(synth, again, tiny_agent_dir, tmp_path / "cache", "--workers", str(workers))) == 0
    assert again.read_bytes() == out.read_bytes()


def test_dying_worker_costs_only_its_video(synth, serial, tiny_agent, tmp_path):
    from tspo_eval.benchmarks import get_benchmark
    from tspo_eval.candidate_pool import CandidatePool, worker_settings
    from tspo_eval.frame_index_cache import FeatureCache
    from tspo_eval.frame_index_cache.index_store import IndexWriter
    from tspo_eval.precompute import canonicalize, plan_jobs
    from tspo_eval.precompute_parallel import run_jobs_parallel
    from tspo_eval.selection import FrameSelector
    from tspo_eval.testing.worker_faults import CrashOn

    annotations, videos = synth
    bench = get_benchmark("synthetic")
    jobs = plan_jobs(bench.load(annotations))
    selector = FrameSelector(tiny_agent, cache=FeatureCache(tmp_path / "cache"))
    for how, victim in (("segv", "synth_001"), ("exit", "synth_003")):
        out = tmp_path / f"{how}.jsonl"

        def pool(sel, n, how=how, victim=victim):
            return CandidatePool(sel, n, worker_settings(sel, on_job=CrashOn(victim, how)))

        with IndexWriter(out) as writer:
            report = run_jobs_parallel(selector, bench, jobs, videos, writer, workers=2, num_frames=K,
                                       pool_factory=pool)
        canonicalize(out)
        assert {f.video for f in report.failures} == {f"{victim}.mp4"} and len(report.failures) == PER_VIDEO
        reason = report.failures[0].reason
        assert "worker process died" in reason and ("SIGSEGV" if how == "segv" else "exit code 3") in reason
        expected = {k: v for k, v in read_index(serial / "index.jsonl").items() if v.video != f"{victim}.mp4"}
        assert read_index(out) == expected
        shutil.rmtree(tmp_path / "cache")  # next round decodes again


def test_corrupt_video_in_a_worker_is_reported_like_serially(synth, tiny_agent_dir, tmp_path, capsys):
    annotations, videos = synth
    broken = tmp_path / "videos"
    shutil.copytree(videos, broken)
    data = (broken / "synth_002.mp4").read_bytes()
    (broken / "synth_002.mp4").write_bytes(data[: len(data) // 8])  # truncated
    (broken / "synth_004.mp4").unlink()                              # missing
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}" / "index.jsonl"
        assert main(cli_args((annotations, broken), out, tiny_agent_dir, tmp_path / f"c{workers}",
                             "--workers", workers)) == 1
        runs[workers] = (out.read_bytes(), failures_path(out).read_text())
    assert runs["1"] == runs["2"]
    failures = [json.loads(line) for line in runs["2"][1].splitlines()]
    assert {f["video"] for f in failures} == {"synth_002.mp4", "synth_004.mp4"}
    assert len(runs["2"][0].splitlines()) == (N_VIDEOS - 2) * PER_VIDEO


HANGING_RUN = """
import sys
from tspo_eval.benchmarks import get_benchmark
from tspo_eval.candidate_pool import CandidatePool, worker_settings
from tspo_eval.frame_index_cache.index_store import IndexWriter
from tspo_eval.precompute import plan_jobs
from tspo_eval.precompute_parallel import run_jobs_parallel
from tspo_eval.selection import FrameSelector
from tspo_eval.agent import load_scorer
from tspo_eval.testing.worker_faults import CrashOn

if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also when pytest runs as a
    # background job (whose children inherit SIGINT ignored)
    annotations, videos, out, agent = sys.argv[1:5]
    bench = get_benchmark("synthetic")
    selector = FrameSelector(load_scorer(agent=agent, device="cpu"), cache=False)
    pool = lambda sel, n: CandidatePool(sel, n, worker_settings(sel, on_job=CrashOn("synth", "hang")))
    with IndexWriter(out) as writer:
        run_jobs_parallel(selector, bench, plan_jobs(bench.load(annotations)), videos, writer, workers=2,
                          num_frames=6, pool_factory=pool)
"""


def signal_thread(pid: int, tid: int, sig: int) -> None:
    """tgkill: ``sig`` to one thread of ``pid`` (as the kernel may pick for a Ctrl-C of the process)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234 if platform.machine() == "x86_64" else 131, pid, tid, sig) != 0:  # SYS_tgkill
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tid}, {sig})")


@pytest.mark.parametrize("sig,to_thread", [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False),
                                           (signal.SIGKILL, False)])
def test_no_worker_outlives_the_parent(synth, tiny_agent_dir, tmp_path, sig, to_thread):
    """Also with the Ctrl-C delivered to a thread other than the main one (torch's), which used to leave
    the main thread blocked on the hanging workers' pipes for ever."""
    if to_thread and not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")):
        pytest.skip("tgkill numbers known for Linux x86_64/aarch64")
    annotations, videos = synth
    script = tmp_path / "hanging_run.py"
    script.write_text(HANGING_RUN)
    stderr = tmp_path / "stderr.txt"  # a file, not a pipe nobody reads while the run logs
    with stderr.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script), str(annotations), str(videos),
                                 str(tmp_path / "out.jsonl"), str(tiny_agent_dir)], cwd=REPO,
                                stderr=sink, start_new_session=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [c for c in parent.children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())]
            if len(workers) >= 2 and all(c.cpu_times().user > 0.3 for c in workers):  # imported, hanging in a job
                break
            time.sleep(0.2)
        assert proc.poll() is None and len(workers) >= 2, stderr.read_text(errors="replace")[-2000:]
        descendants = parent.children(recursive=True)  # workers + multiprocessing's resource tracker
        if to_thread:
            others = [t.id for t in parent.threads() if t.id != proc.pid]
            assert others, "the run has no thread besides the main one"
            signal_thread(proc.pid, others[-1], sig)
        else:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{proc.pid}/status")
            masks = [line for line in status.read_text().splitlines() if line.startswith("Sig")] if status.exists() else []
            tree = [" ".join(c.cmdline())[:200] for c in parent.children(recursive=True)]
            pytest.fail(f"the run did not exit 30 s after {sig.name} ({'; '.join(masks)}; children {tree}); its stderr:\n"
                        + stderr.read_text(errors="replace")[-3000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"{[p.pid for p in alive]} outlived the run after {sig.name}"


SLOW_WORKERS_RUN = """
import sys
from tspo_eval.precompute import PrecomputeOptions, precompute
from tspo_eval.selection import FrameSelector
from tspo_eval.selector_options import SelectorOptions

if __name__ == "__main__":
    annotations, videos, out, agent, cache = sys.argv[1:6]
    options = PrecomputeOptions("synthetic", annotations, videos, out,
                                SelectorOptions(agent=agent, num_frames=6, device="cpu", cache_dir=cache, workers=2),
                                progress=False)
    import tspo_eval.precompute_parallel as parallel
    from tspo_eval.candidate_pool import CandidatePool, worker_settings
    from tspo_eval.testing.worker_faults import SlowDown
    original = parallel.run_jobs_parallel
    def slow(*args, **kwargs):
        kwargs["pool_factory"] = lambda sel, n: CandidatePool(sel, n, worker_settings(sel, on_job=SlowDown("synth", 1.0)))
        return original(*args, **kwargs)
    parallel.run_jobs_parallel = slow
    precompute(options)
"""


def test_killed_parallel_run_resumes_to_the_same_file(synth, serial, tiny_agent_dir, tmp_path):
    annotations, videos = synth
    out = tmp_path / "index.jsonl"
    script = tmp_path / "slow_run.py"
    script.write_text(SLOW_WORKERS_RUN)
    proc = subprocess.Popen([sys.executable, str(script), str(annotations), str(videos), str(out),
                             str(tiny_agent_dir), str(tmp_path / "cache")], cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished (or died) before it could be killed"
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert 1 <= len(read_index(out)) < N_VIDEOS * PER_VIDEO
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert main(cli_args(synth, out, tiny_agent_dir, tmp_path / "cache", "--workers", "2")) == 0
    assert out.read_bytes() == (serial / "index.jsonl").read_bytes()


def test_worker_count_validation_and_default(monkeypatch):
    from tspo_eval import candidate_pool
    from tspo_eval.errors import InputError
    from tspo_eval.precompute_parallel import resolve_workers

    with pytest.raises(InputError, match="--workers"):
        resolve_workers(0, 5)
    assert resolve_workers(8, 3) == 8                       # videos are split into segments
    assert resolve_workers(8, 0) == 1
    monkeypatch.setattr(candidate_pool, "usable_cores", lambda: 16)
    monkeypatch.setattr(candidate_pool, "available_ram", lambda: candidate_pool.RESERVED_RAM_BYTES
                        + 5 * candidate_pool.WORKER_RAM_BYTES)
    assert candidate_pool.default_workers() == 5            # bounded by RAM
    assert candidate_pool.default_workers(ranks_on_node=8) == 1  # RAM for 5 workers over 8 ranks: at least 1
    monkeypatch.setattr(candidate_pool, "available_ram", lambda: 64 * 2**30)
    assert candidate_pool.default_workers() == 16           # bounded by cores
    assert candidate_pool.default_workers(ranks_on_node=4) == 4


def test_torchcodec_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    from tspo_eval.errors import InputError
    from tspo_eval.testing import write_test_video
    from tspo_eval.video import open_video

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: benchmarks/gpu_check.py exercises torchcodec-cuda")
    path = write_test_video(tmp_path / "v.mp4", n_frames=10)
    with pytest.raises(InputError, match="torchcodec-cuda.*(CUDA GPU|not available)"):
        open_video(path, "torchcodec-cuda")
