"""CLIP preprocessing of decoded candidates: the Hugging Face image processor frame by frame (what
``processor(images=list(frames))`` does) against :class:`tspo_eval.agent.clip_pixels.ClipPixels`
(the same arithmetic once per chunk), on chunks of 32 uint8 frames, with byte equality checked.

    python benchmarks/bench_clip_pixels.py                  # 360p, 720p, 1080p; 1 thread and all
    python benchmarks/bench_clip_pixels.py --repeats 10

Processor: CLIP ViT-L/14's settings (shortest edge 224, bicubic, centre crop 224, OpenAI mean/std),
built from ``CLIPImageProcessor``.  Times are the best of ``--repeats`` (ratios within one run).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SIZES = {"360p": (360, 640), "720p": (720, 1280), "1080p": (1080, 1920)}


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=32, help="frames per call (FrameSelector's chunk)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_clip_pixels.md")
    args = parser.parse_args(argv)

    from transformers import CLIPImageProcessor

    from tspo_eval.agent.clip_pixels import ClipPixels
    from tspo_eval.candidate_pool import usable_cores

    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
    pixels = ClipPixels(processor)
    rng = np.random.default_rng(0)
    all_threads = torch.get_num_threads()
    rows, identical = [], True
    for name, (height, width) in SIZES.items():
        frames = rng.integers(0, 256, (args.chunk, height, width, 3), dtype=np.uint8)
        reference = processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")["pixel_values"]
        same = reference.numpy().tobytes() == pixels(frames).numpy().tobytes()
        identical &= same and (height, width) in pixels.batched_sizes
        for threads in sorted({1, all_threads}):
            torch.set_num_threads(threads)
            slow = best_of(args.repeats, lambda: processor(images=list(frames), return_tensors="pt",
                                                           input_data_format="channels_last"))
            fast = best_of(args.repeats, lambda: pixels(frames))
            rows.append(f"| {name} | {threads} | {slow * 1e3 / args.chunk:.2f} | {fast * 1e3 / args.chunk:.2f} | "
                        f"{slow / fast:.2f}x | {same} |")
        torch.set_num_threads(all_threads)

    import transformers

    command = "python benchmarks/bench_clip_pixels.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# CLIP preprocessing: image processor per frame vs ClipPixels per chunk", "",
        f"Command: `{command.strip()}`", "",
        f"Machine: {platform.processor() or platform.machine()}, {usable_cores()} usable cores; "
        f"torch {torch.__version__}, transformers {transformers.__version__}; CLIP ViT-L/14 preprocessing "
        f"(224, bicubic, centre crop); chunks of {args.chunk} random uint8 frames; best of {args.repeats}.", "",
        "| frames | torch threads | processor (ms/frame) | ClipPixels (ms/frame) | speed-up | same bytes |",
        "|---|---:|---:|---:|---:|---|", *rows, "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from tspo_eval.atomic_files import atomic_write

    atomic_write(args.out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
