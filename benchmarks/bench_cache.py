"""Cost of a second question on the same video: the feature cache (disk, and in memory for the
last video) against the first, cold question (decode + encode + score + select).

Target (issue 2): a second question costs <= 5% of the first.

    python benchmarks/bench_cache.py                    # 10-minute synthetic video, CPU
    python benchmarks/bench_cache.py --minutes 60 --device cuda --clip large

Reuses the synthetic videos and random CLIP checkpoints of bench_candidates.py (benchmarks/_work/).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_candidates import CLIP_NAMES, CLIP_SIZES, WORK, make_bench_checkpoint, make_synthetic_video  # noqa: E402

QUESTIONS = [
    "What is the person holding when the bar reaches the right edge?",
    "When does the background turn darker?\nOptions:\nA. start\nB. middle\nC. end",
    "How many times does the bar cross the screen?",
    "Which colour dominates the last minute?",
    "What happens right after the texture stops drifting?",
]


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clip", choices=sorted(CLIP_SIZES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--decoder", default="decord")
    parser.add_argument("--num-frames", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_cache.md")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_cache.py " + " ".join(argv if argv is not None else sys.argv[1:])

    import torch

    from tspo_eval.agent import TemporalAgent
    from tspo_eval.frame_index_cache import FeatureCache
    from tspo_eval.selection import FrameSelector

    video = make_synthetic_video(WORK / f"synthetic_{args.minutes:g}min_30fps_320x240.mp4", args.minutes)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    agent = TemporalAgent.from_pretrained(str(make_bench_checkpoint(args.clip)), device=args.device, dtype=dtype)
    agent.encode_frames(torch.zeros(2, 240, 320, 3, dtype=torch.uint8).numpy())  # warm-up
    root = WORK / "bench_cache_features"
    shutil.rmtree(root, ignore_errors=True)
    cache = FeatureCache(root)

    def ask(selector: FrameSelector, question: str):
        return selector.select(video, question, num_frames=args.num_frames, strategy="topk")

    first_s, first = _timed(lambda: ask(FrameSelector(agent, cache=cache, decoder=args.decoder), QUESTIONS[0]))
    # a new selector, as in a new process or another worker: features come from the disk cache
    disk = [_timed(lambda q=q: ask(FrameSelector(agent, cache=cache, decoder=args.decoder), q)) for q in QUESTIONS[1:]]
    # the same selector: features of the last video are kept in memory
    warm = FrameSelector(agent, cache=cache, decoder=args.decoder)
    ask(warm, QUESTIONS[0])
    memory = [_timed(lambda q=q: ask(warm, q)) for q in QUESTIONS[1:]]
    # select_many: one decode + encode for several questions, cache off
    many_s, many = _timed(lambda: FrameSelector(agent, cache=False, decoder=args.decoder).select_many(
        video, QUESTIONS, num_frames=args.num_frames))
    uncached_identical = all(
        a.frame_indices == b.frame_indices for a, b in zip(many, [first] + [d[1] for d in disk])
    )
    assert all(d[1].feature_cache_hit for d in disk) and not first.feature_cache_hit

    disk_s = statistics.median(t for t, _ in disk)
    mem_s = statistics.median(t for t, _ in memory)
    entry = cache.info()
    lines = [
        "# bench_cache: a second question on the same video",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with five other engineers' test runs "
        "(noisy: the ratios within this run are what counts); "
        f"device `{args.device}`, decoder `{args.decoder}`, K = {args.num_frames}, strategy topk.",
        f"Video: synthetic {args.minutes:g}-minute 320x240 30 fps H.264 ({first.num_candidates} candidates at 1 fps). "
        f"Encoder: random CLIP, {CLIP_NAMES[args.clip]} image tower ({CLIP_SIZES[args.clip]}, 224 px, projection 768).",
        "",
        "| step | time (s) | share of the first question |",
        "|---|---|---|",
        f"| first question (decode + encode + score + select, cache written) | {first_s:.2f} | 100% |",
        f"| later question, new FrameSelector (disk cache hit; median of {len(disk)}) | {disk_s:.3f} | "
        f"{100 * disk_s / first_s:.2f}% |",
        f"| later question, same FrameSelector (in-memory features; median of {len(memory)}) | {mem_s:.3f} | "
        f"{100 * mem_s / first_s:.2f}% |",
        f"| select_many of {len(QUESTIONS)} questions, no cache (one decode + encode) | {many_s:.2f} | "
        f"{100 * many_s / first_s:.0f}% |",
        "",
        f"- Target: a second question <= 5% of the first: disk {100 * disk_s / first_s:.2f}% "
        f"({'PASS' if disk_s <= 0.05 * first_s else 'FAIL'}), memory {100 * mem_s / first_s:.2f}% "
        f"({'PASS' if mem_s <= 0.05 * first_s else 'FAIL'}).",
        f"- The disk hit still opens the video for its metadata (decord indexes the packets), fingerprints it "
        f"(< 3 MiB read), loads and checks the entry ({entry['bytes']} bytes for {entry['entries']} entry), "
        "then encodes the question and runs the selector head.",
        f"- Same frames with and without the cache (select_many, cache off, vs the cached answers): "
        f"{'yes' if uncached_identical else 'NO'}.",
        "- GPU figures were not taken: no GPU was lent to this task.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, args.out)
    shutil.rmtree(root, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
