"""Leaderboard cost at full-benchmark scale: read runs, paired statistics, write tables and chart.

Synthetic lmms-eval run folders (written by lmms-eval's own EvaluationTracker) with the question
counts and breakdown shapes of Video-MME (2,700 questions; duration x domain x task type) and
LVBench (1,549 questions; multi-valued question types): 2 models x {uniform, tspo, clip} at
64 frames.  Times each stage and the bootstrap at several resample counts.

    python benchmarks/bench_leaderboard.py                 # default: 10000 resamples
    python benchmarks/bench_leaderboard.py --bootstrap 2000 5000 10000

Statistics are numpy on the CPU; ``--device`` is accepted for the common benchmark interface
and has no effect here.  Results: benchmarks/results/bench_leaderboard.md.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "leaderboard"
RESULTS = HERE / "results"

SHAPES = {
    "tspo_videomme": (2700, {"duration": ["short", "medium", "long"],
                             "domain": ["Knowledge", "Film", "Sports", "Art", "Life", "Multilingual"],
                             "task_type": [f"T{i}" for i in range(12)]}),
    "tspo_lvbench": (1549, {"question_type": ["ER", "EU", "KIR", "TG", "Rea", "Sum"]}),
}
MODELS = ("Qwen/Qwen2.5-VL-7B-Instruct", "llava-hf/LLaVA-Video-7B-Qwen2-hf")
SOURCES = {"uniform": ({"frame_selection": "uniform"}, 0.55), "tspo": ({"frame_selection": "tspo"}, 0.60),
           "clip": ({"frame_selection": "tspo", "scorer": "clip"}, 0.57)}


def build_runs(root: Path, seed: int = 0) -> None:
    from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run

    rng = np.random.default_rng(seed)
    stamp = 0
    for task, (n, breakdowns) in SHAPES.items():
        qids = [f"{task[5:]}-{i}" for i in range(n)]
        cats = {}
        for q in qids:
            entry = {}
            for name, values in breakdowns.items():
                if name == "question_type":   # LVBench: 1-2 types per question
                    entry[name] = list(rng.choice(values, size=int(rng.integers(1, 3)), replace=False))
                else:
                    entry[name] = str(rng.choice(values))
            cats[q] = entry
        difficulty = rng.random(n)
        for model in MODELS:
            for args, acc in SOURCES.values():
                correct = difficulty < acc + rng.normal(0, 0.1, n) * 0.5
                stamp += 1
                write_lmms_eval_run(root, task, {"pretrained": model, "num_frames": 64, **args},
                                    dict(zip(qids, map(bool, correct))), cats, datetime_str=f"20260101_{stamp:06d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", type=int, nargs="+", default=[10000])
    parser.add_argument("--device", default="cpu", help="accepted for uniformity; statistics run in numpy on the CPU")
    parser.add_argument("--no-record", action="store_true", help="do not write benchmarks/results/bench_leaderboard.md")
    args = parser.parse_args()

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    from tspo_eval.leaderboard.board import build_leaderboard
    from tspo_eval.leaderboard.runs import load_all
    from tspo_eval.leaderboard.tables import write_outputs

    shutil.rmtree(WORK, ignore_errors=True)
    t0 = time.perf_counter()
    build_runs(WORK / "runs")
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = load_all([str(WORK / "runs")])
    t_load = time.perf_counter() - t0
    lines = []
    for n_boot in args.bootstrap:
        t0 = time.perf_counter()
        board = build_leaderboard(runs, n_boot=n_boot, seed=0)
        t_board = time.perf_counter() - t0
        t0 = time.perf_counter()
        paths = write_outputs(board, WORK / f"out_{n_boot}")
        t_write = time.perf_counter() - t0
        compared = sum(1 for r in board.rows if r.baseline is not None)
        lines.append(f"| {n_boot} | {len(board.rows)} | {compared} | {t_board:.2f} | {t_write:.2f} | "
                     f"{paths['chart'].stat().st_size // 1024} |")
        print(lines[-1], flush=True)
    n_q = sum(n for n, _ in SHAPES.values())
    report = "\n".join([
        "# bench_leaderboard", "",
        f"Command: `python benchmarks/bench_leaderboard.py --bootstrap {' '.join(map(str, args.bootstrap))}`", "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        "CPU only (numpy). The machine is shared by several engineers running tests: timings are noisy; "
        "compare ratios within this run.", "",
        f"Runs: {len(runs)} (2 benchmarks x 2 models x uniform/tspo/clip at 64 frames), {n_q} questions per "
        f"model/selector; Video-MME-shaped (2,700 q, 3 breakdowns, 21 values) and LVBench-shaped (1,549 q, "
        f"multi-valued question types).", "",
        f"Writing the synthetic run folders (lmms-eval EvaluationTracker): {t_build:.2f} s; reading them "
        f"(`load_all`): {t_load:.2f} s.", "",
        "| resamples | rows | rows with a paired comparison | build_leaderboard (s) | write md/csv/json/png (s) | PNG (KiB) |",
        "|---|---|---|---|---|---|", *lines, "",
        "Each row bootstraps the run's accuracy and, when compared, the paired difference: `n_boot x n` "
        "index draws in 512-row blocks; one draw serves both statistics when the run and its baseline "
        "answered the same questions (the usual case). Cost grows linearly with resamples x questions x "
        "(1 + breakdown memberships) x runs.", ""])
    if not args.no_record:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "bench_leaderboard.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
