"""Benchmark: TSPO selector head score + top-64, ours (windowed, no T x T) vs the naive full-mask spec.

Each (variant, T) runs in a fresh subprocess so peak memory is measured honestly:
- CPU: the process's peak RSS (VmHWM) is reset after set-up (``/proc/self/clear_refs``), then the
  peak during one score + top-64 minus the RSS before it is reported (fallback: ``ru_maxrss`` delta);
- CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the run.
Times are the best (and median) of ``--repeats`` runs after one warm-up.  Both variants get the same seeded
inputs and weights; the parent checks that they pick the same 64 frames.

    python benchmarks/bench_head.py [--device cpu|cuda] [--lengths 600 3600 7200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_head.md"
K = 64


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _inputs(length: int, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    from tspo_eval.testing import random_selector_state

    state = {k: v.to(device) for k, v in random_selector_state(seed=0, prefix="", scale=0.05).items()}
    gen = torch.Generator().manual_seed(length)
    frames = torch.randn(length, 768, generator=gen).to(device)
    text = torch.randn(1, 768, generator=gen).to(device)
    return state, frames, text


VARIANTS = ("ours", "naive", "ours-next-question", "attn-ours", "attn-naive")


def _make_fn(variant: str, state: dict[str, torch.Tensor], device: torch.device, frames: torch.Tensor):
    """``fn(frames, text)`` for ``variant``; set-up work (weights, cached ``F_e``) happens here, untimed.

    - ``ours``: :class:`SelectorHead` score + top-64 on features seen for the first time;
    - ``naive``: :func:`naive_selector_logits` (full T x T mask) + top-64;
    - ``ours-next-question``: another question on the same video (``F_e`` reused by
      :class:`EmbeddingCache`, as :meth:`TemporalAgent.score` does);
    - ``attn-ours`` / ``attn-naive``: the attention core alone on ``q = k = v = frames``.
    """
    from tspo_eval.agent.naive_reference import naive_selector_logits, naive_windowed_attention
    from tspo_eval.agent.selection import select_positions
    from tspo_eval.agent.selector_head import EmbeddingCache, SelectorHead
    from tspo_eval.agent.window_attention import windowed_attention

    head = SelectorHead().to(device).eval()
    head.load_state_dict(state)
    if variant == "ours":
        def ours(f, t):
            return select_positions(head(f, t), K, "topk")
        return ours
    if variant == "ours-next-question":
        cache = EmbeddingCache(head)
        with torch.inference_mode():
            cache(head.prepare(frames))  # first question on this video (untimed)

        def next_question(f, t):
            f_f = head.prepare(f)
            return select_positions(head.logits(cache(f_f), f_f, t), K, "topk")
        return next_question
    if variant == "attn-ours":
        return lambda f, t: windowed_attention(f, f, f, 8, 12)[:, 0]
    if variant == "attn-naive":
        return lambda f, t: naive_windowed_attention(f, f, f, 8, 12)[:, 0]

    def naive(f, t):
        return torch.sort(torch.topk(naive_selector_logits(state, f, t), K).indices).values.cpu()
    return naive


def worker(variant: str, length: int, device_name: str, repeats: int) -> dict:
    """Time and peak memory of one variant at one T (run in its own process)."""
    device = torch.device(device_name)
    state, frames, text = _inputs(length, device)
    with torch.inference_mode():
        fn = _make_fn(variant, state, device, frames)
        if variant != "ours-next-question":
            small = _inputs(128, device)
            fn(small[1], small[2])  # warm-up of kernels and allocator, small T
        else:
            fn(frames, text)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        reset = _reset_peak_rss()
        base_rss = _status_kib("VmRSS") if reset else None
        base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode():
        start = time.perf_counter()
        chosen = fn(frames, text)
        sync()
        first = time.perf_counter() - start
    if device.type == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
        method = "torch.cuda.max_memory_allocated - allocated before"
    elif base_rss is not None:
        peak_mb = (_status_kib("VmHWM") - base_rss) / 1024
        method = "VmHWM after reset - VmRSS before"
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_maxrss) / 1024
        method = "ru_maxrss delta"
    times = [first]
    with torch.inference_mode():
        for _ in range(repeats - 1):
            start = time.perf_counter()
            fn(frames, text)
            sync()
            times.append(time.perf_counter() - start)
    return {
        "variant": variant, "T": length, "time_s": min(times), "median_s": statistics.median(times), "times_s": times,
        "peak_mb": peak_mb, "memory_method": method, "chosen": chosen.tolist(), "threads": torch.get_num_threads(),
    }


def run_worker(variant: str, length: int, device: str, repeats: int, timeout: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--lengths", str(length), "--device", device,
           "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode:
        return {"variant": variant, "T": length, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores visible"


def _ms(row: dict) -> str:
    return f"{row['time_s'] * 1e3:.1f} ({row['median_s'] * 1e3:.0f})"


def _pair_rows(by: dict, lengths: list[int], fast: str, slow: str, check) -> list[str]:
    rows = []
    for length in lengths:
        a, b = by.get((fast, length), {}), by.get((slow, length), {})
        if not a or not b or "error" in a or "error" in b:
            rows.append(f"| {length} | {a.get('error', 'missing')} | {b.get('error', 'missing')} | | | | | |")
            continue
        speed = b["time_s"] / a["time_s"]
        tiny = a["peak_mb"] < 1.0  # below the resolution of page-level RSS accounting
        ratio = f"> {b['peak_mb']:.0f}x" if tiny else f"{b['peak_mb'] / a['peak_mb']:.1f}x"
        ours_peak = "< 1" if tiny else f"{a['peak_mb']:.1f}"
        rows.append(
            f"| {length} | {_ms(a)} | {_ms(b)} | {speed:.1f}x | "
            f"{ours_peak} | {b['peak_mb']:.1f} | {ratio} | {check(a['chosen'], b['chosen'])} |"
        )
    return rows


def report(rows: list[dict], args: argparse.Namespace, command: str) -> str:
    by = {(r["variant"], r["T"]): r for r in rows}
    threads = next((r["threads"] for r in rows if "threads" in r), "?")
    same = lambda x, y: "yes" if x == y else "NO"  # noqa: E731
    close = lambda x, y: f"{max(abs(p - q) for p, q in zip(x, y)):.1e}"  # noqa: E731
    header = "| T | {a} time, ms best (median) | {b} time, ms best (median) | speed-up | {a} peak (MiB) | {b} peak (MiB) | memory ratio | {c} |"
    rule = "|---:|---:|---:|---:|---:|---:|---:|:---:|"
    lines = [
        "# bench_head: selector head score + top-64, windowed (ours) vs naive full T x T mask",
        "",
        f"Command: `{command}`",
        "",
        f"Device: {args.device} ({_machine(args.device)}), torch {torch.__version__}, {threads} threads, "
        f"best (and median) of {args.repeats} runs after a warm-up; speed-up = ratio of the best times; "
        "each (variant, T) in a fresh process.",
        f"Peak memory: {next((r['memory_method'] for r in rows if 'memory_method' in r), '?')} "
        "(extra memory of one call, inputs and weights excluded).",
        "",
        "## Score + top-64, first question on a video (features seen for the first time)",
        "",
        header.format(a="ours", b="naive", c="same top-64"),
        rule,
        *_pair_rows(by, args.lengths, "ours", "naive", same),
        "",
        "## Score + top-64, next question on the same video (ours reuses the question-independent F_e)",
        "",
        header.format(a="ours", b="naive", c="same top-64"),
        rule,
        *_pair_rows(by, args.lengths, "ours-next-question", "naive", same),
        "",
        "## Attention core alone (q = k = v = features, 8 heads, window 12)",
        "",
        header.format(a="ours", b="naive", c="max abs diff (col 0)"),
        rule,
        *_pair_rows(by, args.lengths, "attn-ours", "attn-naive", close),
        "",
        "Target (issue 2) at T = 3,600 on CPU: >= 20x faster and >= 10x less peak memory.",
        "",
        "## Reading the numbers",
        "",
        "Both implementations must run the five dense T x 768 x 768 products of the spec (Q, K, V and the",
        "two MLP layers: 5 T 768^2 multiply-adds); the naive one adds 2 T^2 768 for the T x T scores and",
        "their use, plus several passes over 8 T^2 floats (mask fill, softmax).  So for a question on",
        "features seen for the first time the exact speed-up is bounded by roughly the arithmetic ratio",
        "(naive / ours multiply-adds): "
        + ", ".join(f"T = {t}: {1 + 2 * t / (5 * 768):.1f}x" for t in args.lengths)
        + " (plus what the T^2 memory traffic costs).",
        "No exact implementation can be 20x faster than the naive one at T = 3,600 on CPU for that case;",
        "ours gets close to the bound while its peak memory stays linear in T (rows in chunks of 1,024,",
        "attention in blocks of 32).  The T^2 part alone (attention core table) and every further",
        "question on a video (the question-independent F_e is reused, which the feature cache makes the",
        "normal case: several questions per video) are where the large factors are.",
        "",
        "The machine is shared with other jobs (2 CPU cores for six engineers): absolute times are noisy;",
        "compare the ratios within one run.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[600, 3600, 7200])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per worker process")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.lengths[0], args.device, args.repeats)))
        return
    command = "python benchmarks/bench_head.py " + " ".join(sys.argv[1:])
    rows = []
    for length in args.lengths:
        for variant in VARIANTS:
            row = run_worker(variant, length, args.device, args.repeats, args.timeout)
            rows.append(row)
            shown = {k: v for k, v in row.items() if k not in ("chosen", "times_s")}
            print(json.dumps(shown), file=sys.stderr, flush=True)
    text = report(rows, args, command.strip())
    tmp = args.out.with_suffix(".md.tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    os.replace(tmp, args.out)
    print(text)


if __name__ == "__main__":
    main()
