"""``precompute --workers N`` against the pure-decode limit of the same videos, in one run (issue 12).

Pure-decode limit = the faster of (a) a threaded serial decode of every video's 1 fps candidates
(RGB, the reader precompute uses) and (b) N processes decoding the videos in parallel, measured
both decoding every frame (full) and with PyAV's exact sparse decoding (non-reference frames that
are not candidates skipped, the reader's default).  Then the
real command path (``tspo_eval.precompute.precompute``, cold feature cache) with ``--workers 1``
and ``--workers N``.  Peak RSS is sampled (every 50 ms) for the main process and each worker.

    python benchmarks/bench_precompute_workers.py                      # 4 x 2 min 640x360, GOP 250
    python benchmarks/bench_precompute_workers.py --videos 8 --minutes 5 --workers 4

Videos: long-GOP H.264 (libx264 ultrafast, keyint 250, 3 B-frames with x264's pyramid, as in most
real files; ``--bframes 0`` for none) written with PyAV under benchmarks/_work.  The script sets
``OMP_WAIT_POLICY=PASSIVE`` unless set, as the ``tspo-eval`` command does.
Target: precompute wall <= 1.15x the pure-decode limit; peak RSS <= N x one worker's peak + the
encoder process.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the tspo-eval command sets it, before torch loads
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_candidates import CLIP_NAMES, WORK, make_bench_checkpoint, make_synthetic_video  # noqa: E402


def decode_one(args: tuple[str, str, int, bool]) -> int:
    """Decode the 1 fps candidates of one video (RGB, chunks of 32); returns the frame count.

    ``sparse``: PyAV skips the non-reference frames that are not candidates (exact); False: every
    frame is decoded (the classic pure decode)."""
    from tspo_eval.video import candidate_grid, iter_frame_chunks, open_video
    from tspo_eval.video.pyav_backend import PyAVReader

    path, decoder, threads, sparse = args
    n = 0
    with (PyAVReader(path, threads=threads or True, sparse=sparse) if decoder == "pyav"
          else open_video(path, decoder, threads)) as reader:
        for chunk in iter_frame_chunks(reader, candidate_grid(reader.metadata)):
            n += len(chunk)
    return n


class RssSampler:
    """Peak RSS (bytes) of this process and of each descendant, sampled every ``period`` s."""

    def __init__(self, period: float = 0.05) -> None:
        import psutil

        self.me, self.period = psutil.Process(), period
        self.main_peak, self.child_peaks, self.total_peak = 0, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                main = self.me.memory_info().rss
                total = main
                for child in self.me.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    if "resource_tracker" in " ".join(child.cmdline()):
                        continue
                    self.child_peaks[child.pid] = max(self.child_peaks.get(child.pid, 0), rss)
                    total += rss
                self.main_peak, self.total_peak = max(self.main_peak, main), max(self.total_peak, total)
            except psutil.Error:
                pass
            self._stop.wait(self.period)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def prepare(n_videos: int, minutes: float, width: int, height: int, bframes: int = 3) -> tuple[Path, Path]:
    """A synthetic benchmark (2 questions per video) whose videos are replaced by long-GOP clips."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    folder = WORK / f"workers_v3_{n_videos}x{minutes:g}min_{width}x{height}_bf{bframes}"
    annotations, videos = folder / "synthetic.json", folder / "videos"
    if not annotations.exists():
        build_synthetic_benchmark(folder, n_videos=n_videos, questions_per_video=2, seconds=8, fps=10.0)
        for i, path in enumerate(sorted(videos.glob("*.mp4"))):
            path.unlink()  # lengths differ by 10 s steps, so no two videos share a feature-cache entry
            make_synthetic_video(path, minutes + i / 6, width=width, height=height, bframes=bframes)
    return annotations, videos


def run_precompute(scorer, annotations: Path, videos: Path, out_dir: Path, workers: int, decoder: str):
    from tspo_eval.frame_index_cache import FeatureCache
    from tspo_eval.precompute import PrecomputeOptions, precompute
    from tspo_eval.selection import FrameSelector
    from tspo_eval.selector_options import SelectorOptions

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    selector = FrameSelector(scorer, cache=FeatureCache(out_dir / "cache"), decoder=decoder)
    options = PrecomputeOptions("synthetic", annotations, videos, out_dir / "index.jsonl",
                                SelectorOptions(num_frames=32, decoder=decoder, workers=workers), progress=False)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        report = precompute(options, selector=selector)
        wall = time.perf_counter() - t0
    assert not report.failures, report.failures
    return wall, rss, (out_dir / "index.jsonl").read_bytes()


def one_video(scorer, path: str, workers: int, decoder: str) -> tuple[float, bytes]:
    """Cold candidate features of one video with ``FrameSelector(workers=...)`` (no cache): (seconds, bytes)."""
    from tspo_eval.selection import FrameSelector

    selector = FrameSelector(scorer, cache=False, decoder=decoder, workers=workers)
    t0 = time.perf_counter()
    _meta, _grid, feats = selector.candidate_features(path)
    return time.perf_counter() - t0, feats.numpy().tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--workers", type=int, default=None, help="default: tspo_eval's default_workers()")
    parser.add_argument("--decoder", default="pyav")
    parser.add_argument("--bframes", type=int, default=3, help="B-frames of the generated videos (x264 pyramid)")
    parser.add_argument("--single-minutes", type=float, default=12.0,
                        help="length of the one video split among the workers (FrameSelector(workers=N))")
    parser.add_argument("--clip", default="tiny", choices=sorted(CLIP_NAMES))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_precompute_workers.md")
    args = parser.parse_args(argv)

    from tspo_eval.agent import load_scorer
    from tspo_eval.candidate_pool import (
        PREPROCESS_IN_WORKERS_FROM,
        decoder_threads_per_worker,
        default_workers,
        usable_cores,
    )

    workers = args.workers or default_workers()
    annotations, videos = prepare(args.videos, args.minutes, args.width, args.height, args.bframes)
    paths = [str(p) for p in sorted(videos.glob("*.mp4"))]
    scorer = load_scorer(agent=str(make_bench_checkpoint(args.clip)), device="cpu")

    def pure_decode(sparse: bool) -> tuple[float, float, int]:
        """(threaded serial s, N processes s) decoding every video's candidates; frame count."""
        t0 = time.perf_counter()
        n = sum(decode_one((p, args.decoder, 0, sparse)) for p in paths)
        serial = time.perf_counter() - t0
        parallel = []
        for threads in (0, decoder_threads_per_worker(workers)):  # FFmpeg's default, and precompute's share
            t0 = time.perf_counter()
            with mp.get_context("spawn").Pool(workers) as pool:
                pool.map(decode_one, [(p, args.decoder, threads, sparse) for p in paths], chunksize=1)
            parallel.append(time.perf_counter() - t0)
        return serial, min(parallel), n

    serial_full, parallel_full, frames = pure_decode(sparse=False)
    serial_sparse, parallel_sparse, _ = pure_decode(sparse=True)
    limit_full, limit = min(serial_full, parallel_full), min(serial_sparse, parallel_sparse)

    work = WORK / "workers_runs"
    wall1, rss1, bytes1 = run_precompute(scorer, annotations, videos, work / "w1", 1, args.decoder)
    wall_n, rss_n, bytes_n = run_precompute(scorer, annotations, videos, work / f"w{workers}", workers, args.decoder)
    identical = bytes1 == bytes_n
    longest = str(make_synthetic_video(WORK / f"workers_single_{args.single_minutes:g}min_{args.width}x{args.height}"
                                       f"_bf{args.bframes}.mp4", args.single_minutes, width=args.width,
                                       height=args.height, bframes=args.bframes))
    single = [one_video(scorer, longest, n, args.decoder) for n in (1, workers, 1, workers)]
    single_1, single_n = min(single[0][0], single[2][0]), min(single[1][0], single[3][0])
    single_identical = len({s[1] for s in single}) == 1
    worker_peaks = sorted(rss_n.child_peaks.values())
    mib = 2**20
    bound = workers * (max(worker_peaks) if worker_peaks else 0) + rss_n.main_peak

    command = "python benchmarks/bench_precompute_workers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# precompute --workers N against the pure-decode limit (issue 12)", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {usable_cores()} usable cores, "
        f"Python {platform.python_version()}; decoder {args.decoder}; CLIP {CLIP_NAMES[args.clip]} on CPU (fp32); "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; workers ship "
        f"{'CLIP pixel values' if workers >= PREPROCESS_IN_WORKERS_FROM else 'uint8 frames'}.", "",
        f"Videos: {len(paths)} x {args.minutes:g}-{args.minutes + (len(paths) - 1) / 6:.2f} min {args.width}x{args.height} 30 fps H.264 (x264 ultrafast, "
        f"GOP 250, {args.bframes} B-frames), {frames} candidates at 1 fps, 2 questions each, K = 32.", "",
        "Pure decode: every video's 1 fps candidates to RGB with PyAV (threaded), either decoding every frame "
        "(full) or skipping the non-reference frames that are not candidates (sparse, exact: what tspo-eval's "
        "PyAV reader does); N processes: the faster of FFmpeg's default threads and cores/N threads per "
        "process. The decode limit is the fastest pure decode; ratios are against both limits.", "",
        "| what | wall (s) | candidates/s | vs sparse limit | vs full-decode limit |", "|---|---:|---:|---:|---:|",
        *[f"| {name} | {wall:.2f} | {frames / wall:.1f} | {wall / limit:.2f}x | {wall / limit_full:.2f}x |"
          for name, wall in [("pure decode, full, threaded serial", serial_full),
                             (f"pure decode, full, {workers} processes", parallel_full),
                             ("pure decode, sparse, threaded serial", serial_sparse),
                             (f"pure decode, sparse, {workers} processes", parallel_sparse),
                             ("precompute --workers 1", wall1), (f"precompute --workers {workers}", wall_n)]],
        "",
        f"Target precompute <= 1.15x the decode limit: --workers {workers} {wall_n / limit:.2f}x the sparse limit "
        f"({'PASS' if wall_n <= 1.15 * limit else 'FAIL'}), {wall_n / limit_full:.2f}x the full-decode limit "
        f"({'PASS' if wall_n <= 1.15 * limit_full else 'FAIL'}).", "",
        f"Index files of --workers 1 and --workers {workers} byte-identical: **{identical}**.", "",
        f"One {args.single_minutes:g}-minute video ({Path(longest).name}), cold, `FrameSelector(workers=N)` (best of 2): "
        f"1 process {single_1:.2f} s, {workers} workers splitting it into segments {single_n:.2f} s "
        f"({single_1 / single_n:.2f}x); features byte-identical: **{single_identical}**.", "",
        "Peak RSS (MiB):", "",
        f"- --workers 1: main process {rss1.main_peak / mib:.0f}",
        f"- --workers {workers}: main (encoder) {rss_n.main_peak / mib:.0f}; workers "
        f"{', '.join(f'{p / mib:.0f}' for p in worker_peaks)}; whole tree (sampled together) {rss_n.total_peak / mib:.0f}",
        f"- bound N x one worker's peak + encoder = {bound / mib:.0f}: "
        f"{'within' if rss_n.total_peak <= bound else 'ABOVE'}", "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tspo_eval.atomic_files import atomic_write

    atomic_write(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if identical and single_identical else 1


if __name__ == "__main__":
    sys.exit(main())
