"""Batched generation in the answering layer: ``batch_size=B`` against one request at a time.

Issue 11: ``batch_size > 1`` works for the HF models and gives the same answers as batch 1 under
greedy decoding; this measures the speed-up. On the CPU a small random Qwen2.5-VL stands in for
the 7B model (the ratio, measured in one run, is what counts; absolute times only mean something
on a GPU).

    python benchmarks/bench_batched_answers.py                          # CPU, hidden 256
    python benchmarks/bench_batched_answers.py --device cuda --hidden 1024 --requests 32 --frames 64

Writes benchmarks/results/bench_batched_answers.md.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

PROMPTS = (
    "What colour is the needle? Options: A. red B. green C. blue D. yellow The best answer is",
    "Select the best answer to the following multiple-choice question based on the video. What colour is the needle?",
    "Is it red?",
    "Respond with only the letter (A, B, C, or D) of the correct option. What colour is the needle?",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the random Qwen2.5-VL")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112, help="frame height and width in pixels")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_batched_answers.md")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_batched_answers.py " + " ".join(argv if argv is not None else sys.argv[1:])

    import torch
    from loguru import logger

    logger.remove()  # a script, not the package: answers per request are DEBUG noise here
    logger.add(sys.stderr, level="INFO")

    from tspo_eval.answering import AnswerRequest, GenerationSettings
    from tspo_eval.answering.hf_video import HFVideoAnswerer
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen2_5_vl(Path(tmp) / "qwen", hidden_size=args.hidden)
        answerer = HFVideoAnswerer.from_pretrained(str(path), device=args.device,
                                                   min_pixels=28 * 28, max_pixels=args.size * args.size)
    rng = np.random.default_rng(0)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    requests = []
    for i in range(args.requests):
        frames = rng.integers(0, 256, (args.frames, args.size, args.size, 3), dtype=np.uint8)
        indices = sorted(rng.choice(3000, args.frames, replace=False).tolist())
        requests.append(AnswerRequest(frames, indices, [j / 30.0 for j in indices], 3000, 30.0,
                                      PROMPTS[i % len(PROMPTS)], settings, item=f"q{i}"))

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    reference = answerer.answer(requests, batch_size=1)  # warm-up and the batch-1 answers
    rows = []
    for batch_size in batch_sizes:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            answers = answerer.answer(requests, batch_size=batch_size)
            times.append(time.perf_counter() - t0)
        rows.append((batch_size, statistics.median(times), answers == reference))
    base = rows[0][1]
    lines = [
        "# Batched generation (answering layer)", "",
        f"Command: `{command}`", "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}; "
        f"random Qwen2.5-VL hidden {args.hidden}, {args.requests} requests x {args.frames} frames of "
        f"{args.size}x{args.size}, {args.max_new_tokens} new tokens, greedy; median of {args.repeats}.", "",
        "| batch size | seconds for all requests | speed-up vs batch 1 | answers equal batch 1 |",
        "|---:|---:|---:|:---:|",
    ]
    lines += [f"| {b} | {t:.2f} | {base / t:.2f}x | {'yes' if same else 'NO'} |" for b, t, same in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0 if all(same for _, _, same in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
