"""One GPU check (issue 12), <= 8 minutes on a CUDA machine; writes benchmarks/results/gpu_check.md
with the GPU's name.  ``--smoke`` runs every step at tiny sizes on the CPU (to know it works).

    python benchmarks/gpu_check.py            # on a CUDA machine
    python benchmarks/gpu_check.py --smoke    # anywhere, ~1-2 minutes

Steps (each timed and recorded; a failing step is recorded with its error and the rest go on):
1. CLIP ViT-L/14 image tower at its real size (random weights, transformers' CLIPConfig, nothing
   downloaded), bf16: encode throughput over a batch sweep;
2. cold selection of one generated 60-minute 720p video (a 2-minute x264 clip remuxed 30 times, no
   re-encode, 3 B-frames) through FrameSelector: CPU decoding (PyAV, threads) in this process, split
   among CPU worker processes (``--workers``, the usable cores), and ``--decoder torchcodec-cuda``;
3. precompute candidates/s on 4 such videos with CPU worker processes (``--workers``, default count);
4. Qwen2.5-VL-7B at its published sizes (random weights, built on the GPU) answering one question
   with 64 frames through ``tspo_eval.answering.HFVideoAnswerer``: seconds per question against the
   selection seconds, cold and cached; attention: flash_attention_2 when flash-attn imports, else sdpa.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the tspo-eval command sets it, before torch loads
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_candidates import WORK, make_bench_checkpoint, make_synthetic_video  # noqa: E402
from qwen_sized import SMOKE_SIZES, sized_answerer  # noqa: E402

def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def clip_sweep(checkpoint: Path, device: str, dtype, batches: list[int], seconds: float) -> list[str]:
    import torch

    from tspo_eval.agent.clip_encoder import HFClipEncoder, pooled_features

    enc = HFClipEncoder(checkpoint, torch.device(device), dtype)
    rows = ["| batch | frames/s |", "|---:|---:|"]
    for batch in batches:
        pixels = torch.randn(batch, 3, 224, 224, device=device, dtype=dtype)
        with torch.inference_mode():
            pooled_features(enc.model.get_image_features(pixel_values=pixels))  # warm-up
            sync(device)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                pooled_features(enc.model.get_image_features(pixel_values=pixels))
                n += batch
            sync(device)
        rows.append(f"| {batch} | {n / (time.perf_counter() - t0):,.0f} |")
    return rows


def long_video(folder: Path, minutes_clip: float, repeats: int, width: int, height: int) -> Path:
    """``repeats`` copies of one x264 clip remuxed back to back (no re-encode): a long video fast."""
    import av

    out = folder / f"long_{minutes_clip * repeats:g}min_{height}p_bf3.mp4"
    if out.exists():
        return out
    clip = make_synthetic_video(folder / f"clip_{minutes_clip:g}min_{height}p_bf3.mp4", minutes_clip, width=width,
                                height=height, bframes=3)  # B-frames with x264's pyramid, as in most real files
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(clip)) as src, av.open(str(tmp), "w") as dst:
        ins = src.streams.video[0]
        ost = dst.add_stream_from_template(ins)
        packets = [p for p in src.demux(ins) if p.dts is not None]
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + packets[1].duration if len(packets) > 1 else 1
        span = span or int(1 / (ins.time_base * ins.average_rate))
        for r in range(repeats):
            for p in packets:
                p.pts, p.dts = p.pts + r * span, p.dts + r * span
                p.stream = ost
                dst.mux(p)
                p.pts, p.dts = p.pts - r * span, p.dts - r * span
    tmp.replace(out)
    return out


def cold_selection(agent: Path, video: Path, device: str, dtype: str, decoder: str, workers: int = 1) -> str:
    """One cold selection (no cache); ``workers`` > 1 splits the video among CPU worker processes."""
    from tspo_eval.selection import FrameSelector
    from tspo_eval.selector_options import SelectorOptions

    selector = FrameSelector.build(SelectorOptions(agent=str(agent), device=device, dtype=dtype, decoder=decoder,
                                                   cache=False, workers=workers))
    t0 = time.perf_counter()
    result = selector.select(str(video), "What happens after the bar turns?", num_frames=64)
    wall = time.perf_counter() - t0
    return f"| {decoder} | {workers} | {result.num_candidates} | {wall:.2f} | {result.num_candidates / wall:,.0f} |"


def precompute_rate(agent: Path, video: Path, device: str, dtype: str, n_videos: int, folder: Path) -> str:
    from tspo_eval.candidate_pool import default_workers
    from tspo_eval.precompute import PrecomputeOptions, precompute
    from tspo_eval.selector_options import SelectorOptions
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    bench = folder / "bench4"
    shutil.rmtree(bench, ignore_errors=True)
    annotations, videos = build_synthetic_benchmark(bench, n_videos=n_videos, questions_per_video=2, seconds=8)
    for path in sorted(videos.glob("*.mp4")):
        path.unlink()
        path.hardlink_to(video)  # same content: the cache would dedupe, so it is off
    workers = default_workers()
    options = PrecomputeOptions("synthetic", annotations, videos, bench / "index.jsonl",
                                SelectorOptions(agent=str(agent), device=device, dtype=dtype, cache=False,
                                                workers=workers), progress=False)
    t0 = time.perf_counter()
    report = precompute(options)
    wall = time.perf_counter() - t0
    from tspo_eval.video import candidate_grid, open_video

    with open_video(video) as reader:
        per_video = len(candidate_grid(reader.metadata))
    return (f"{n_videos} videos, {per_video * n_videos} candidates, --workers {workers}: {wall:.1f} s, "
            f"**{per_video * n_videos / wall:,.0f} candidates/s** ({len(report.failures)} failures)")


def qwen_answer(agent: Path, video: Path, device: str, smoke: bool, folder: Path) -> list[str]:
    import torch

    from tspo_eval.answering import AnswerRequest
    from tspo_eval.selection import FrameSelector
    from tspo_eval.selector_options import SelectorOptions
    from tspo_eval.video import decode_frames

    # the published 7B sizes (smoke: small ones), random weights, built directly on the device
    attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") and not smoke else "sdpa"
    answerer = sized_answerer(device, SMOKE_SIZES if smoke else None, torch.float32 if smoke else torch.bfloat16,
                              attn_implementation=attn)
    params = sum(p.numel() for p in answerer.model.parameters())
    selector = FrameSelector.build(SelectorOptions(agent=str(agent), device=device,
                                                   cache_dir=str(folder / "qwen_cache")))
    shutil.rmtree(folder / "qwen_cache", ignore_errors=True)
    rows = ["| run | selection (s) | answer (s) | selection / answer |", "|---|---:|---:|---:|"]
    for label in ("cold cache", "cached"):
        t0 = time.perf_counter()
        result = selector.select(str(video), "What happens after the bar turns?", num_frames=64)
        selection = time.perf_counter() - t0
        if label == "cached":
            selector._last = None  # the on-disk cache, not the in-memory last video
            t0 = time.perf_counter()
            result = selector.select(str(video), "What colour is the bar at the end?", num_frames=64)
            selection = time.perf_counter() - t0
        frames = decode_frames(str(video), result.frame_indices)
        request = AnswerRequest.from_selection(result, frames, prompt="What happens after the bar turns? Answer briefly.")
        sync(device)
        t0 = time.perf_counter()
        answerer.answer([request])
        sync(device)
        answer = time.perf_counter() - t0
        rows.append(f"| {label} | {selection:.2f} | {answer:.2f} | {100 * selection / answer:.1f}% |")
    rows.append(f"\nModel: {params / 1e9:.2f} B parameters; attention: {attn}; flash-attn importable: "
                f"{bool(importlib.util.find_spec('flash_attn'))}.")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    from tspo_eval.candidate_pool import default_workers, usable_cores

    cuda = torch.cuda.is_available() and not args.smoke
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    gpu = torch.cuda.get_device_name(0) if cuda else "none (CPU smoke run)"
    folder = WORK / ("gpu_check_smoke" if args.smoke else "gpu_check")
    folder.mkdir(parents=True, exist_ok=True)
    out = args.out or HERE / "results" / ("gpu_check_smoke.md" if args.smoke else "gpu_check.md")
    lines = ["# GPU check (issue 12)", "", f"Command: `python benchmarks/gpu_check.py{' --smoke' if args.smoke else ''}`",
             "", f"GPU: **{gpu}**; torch {torch.__version__}; {platform.machine()}, "
             f"{usable_cores()} CPU cores.", ""]
    clip = make_bench_checkpoint("tiny" if args.smoke else "large")
    minutes, repeats, (w, h) = (0.2, 3, (160, 90)) if args.smoke else (2.0, 30, (1280, 720))
    steps = [
        ("1. CLIP image tower bf16 encode throughput" + (" (tiny, CPU fp32)" if args.smoke else " (ViT-L/14, real size)"),
         lambda: clip_sweep(clip, device, dtype, [8, 16] if args.smoke else [32, 64, 128, 256, 512],
                            0.5 if args.smoke else 5.0)),
    ]
    video_holder: dict[str, Path] = {}

    def make_video() -> list[str]:
        t0 = time.perf_counter()
        video_holder["v"] = long_video(folder, minutes, repeats, w, h)
        return [f"{video_holder['v'].name}: made in {time.perf_counter() - t0:.1f} s"]

    runs = [("pyav", 1), ("pyav", max(2, default_workers()))] + ([] if args.smoke else [("torchcodec-cuda", 1)])
    steps += [
        ("2a. long test video", make_video),
        ("2b. cold selection of the long video (one question, K=64, no cache)",
         lambda: ["| decoder | workers | candidates | wall (s) | candidates/s |", "|---|---:|---:|---:|---:|"]
         + [cold_selection(clip, video_holder["v"], device, "bfloat16" if cuda else "float32", d, n) for d, n in runs]),
        ("3. precompute, 4 such videos, CPU workers",
         lambda: [precompute_rate(clip, video_holder["v"], device, "bfloat16" if cuda else "float32", 4, folder)]),
        ("4. Qwen2.5-VL" + ("-tiny (smoke)" if args.smoke else "-7B sizes, random weights") + ", 64 frames",
         lambda: qwen_answer(clip, video_holder["v"], device, args.smoke, folder)),
    ]
    start = time.perf_counter()
    for title, step in steps:
        t0 = time.perf_counter()
        try:
            body = step()
        except Exception as exc:  # record and go on: one broken step must not hide the others
            body = [f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                    "", "```", traceback.format_exc()[-1500:], "```"]
        lines += [f"## {title}", "", *body, "", f"({time.perf_counter() - t0:.1f} s)", ""]
        print("\n".join(lines[-len(body) - 4:]), flush=True)
    lines.append(f"Total: {time.perf_counter() - start:.0f} s.")
    from tspo_eval.atomic_files import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, "\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
