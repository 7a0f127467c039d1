"""The leaderboard chart draws each paired Δ with its bootstrap interval and fits its axes to the
values (runs a few points apart are not flattened against an axis from 0)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tspo_eval.leaderboard.board import build_leaderboard
from tspo_eval.leaderboard.chart import (
    axis_limits,
    leaderboard_figure,
    plot_leaderboard,
)
from tspo_eval.leaderboard.published import published_results
from tspo_eval.leaderboard.runs import load_all
from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
N_QUESTIONS = 400


@pytest.fixture(scope="module")
def close_board(tmp_path_factory: pytest.TempPathFactory):
    """Three runs of one model, 55 % / 61 % / 56 % on 400 questions (lmms-eval's own run files)."""
    root = tmp_path_factory.mktemp("chart_runs")
    rng = random.Random(0)
    uniform = {f"q{i}": rng.random() < 0.55 for i in range(N_QUESTIONS)}

    def improved(p: float) -> dict[str, bool]:
        return {q: ok or rng.random() < p for q, ok in uniform.items()}

    specs = [({"frame_selection": "uniform"}, uniform, "20260101_100000"),
             ({"frame_selection": "tspo"}, improved(0.12), "20260101_110000"),
             ({"frame_selection": "tspo", "scorer": "clip"}, improved(0.03), "20260101_120000")]
    for args, outcomes, date in specs:
        write_lmms_eval_run(root, "tspo_lvbench", {"pretrained": MODEL, "num_frames": 64, **args}, outcomes,
                            {q: {"question_type": ["ER"]} for q in outcomes}, datetime_str=date)
    return build_leaderboard(load_all([str(root)]), n_boot=400, seed=1)


def _error_bars(ax) -> list[tuple[float, float, float]]:
    """(x, low, high) of every vertical error bar drawn on ``ax``."""
    bars = []
    for container in ax.containers:
        _, _, bar_collections = container.lines
        for collection in bar_collections:
            for segment in collection.get_segments():
                (x, y0), (_, y1) = segment
                bars.append((float(x), float(min(y0, y1)), float(max(y0, y1))))
    return sorted(bars)


def test_delta_panel_draws_each_interval(close_board) -> None:
    rows = close_board.select("lvbench")
    compared = [(x, r) for x, r in enumerate(rows) if r.baseline is not None]
    assert len(compared) == 2 and all(r.delta_high - r.delta_low > 0.5 for _, r in compared)
    figure = leaderboard_figure(close_board)
    accuracy_ax, delta_ax = figure.axes[0], figure.axes[1]
    bars = _error_bars(delta_ax)
    assert len(bars) == len(compared)
    for (x, row), (bx, low, high) in zip(compared, bars):
        assert bx == x and low == pytest.approx(row.delta_low) and high == pytest.approx(row.delta_high)
    texts = " ".join(t.get_text() for t in delta_ax.texts)
    for _, row in compared:
        assert f"{row.delta:+.1f}" in texts and f"[{row.delta_low:+.1f}, {row.delta_high:+.1f}]" in texts
    assert delta_ax.get_ylim()[0] <= 0.0 <= delta_ax.get_ylim()[1]

    # accuracy axis fitted to the intervals, not started at 0
    lows = [r.accuracy_low for r in rows]
    highs = [r.accuracy_high for r in rows]
    y0, y1 = accuracy_ax.get_ylim()
    assert 0.0 < y0 < min(lows) and max(highs) < y1 < 100.0
    assert (y1 - y0) < 3 * (max(highs) - min(lows))
    acc_bars = _error_bars(accuracy_ax)
    assert [round(b[1], 6) for b in acc_bars] == [round(v, 6) for v in lows]


def test_published_row_and_png(close_board, tmp_path: Path) -> None:
    published = published_results(close_board.benchmarks)
    figure = leaderboard_figure(close_board, published)
    assert len(figure.axes) == 3
    ref_ax = figure.axes[2]
    values = [p.accuracy for p in published if p.benchmark == "lvbench"]
    assert ref_ax.get_ylim()[0] > 0 and ref_ax.get_ylim()[0] < min(values) and not _error_bars(ref_ax)
    path = plot_leaderboard(close_board, tmp_path / "leaderboard.png", published)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 600 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_axis_limits() -> None:
    lo, hi = axis_limits([50.0, 52.0], [58.0, 60.0], min_span=4.0, floor=0.0, ceiling=100.0)
    assert 45 < lo < 50 and 60 < hi < 65
    lo, hi = axis_limits([1.0], [99.5], min_span=4.0, floor=0.0, ceiling=100.0)
    assert lo == 0.0 and hi == 100.0
    lo, hi = axis_limits([2.0], [3.0], min_span=2.0, include=[0.0])
    assert lo < 0.0 < 3.0 < hi
    lo, hi = axis_limits([40.0], [40.0], min_span=4.0, floor=0.0, ceiling=100.0)
    assert hi - lo >= 4.0
