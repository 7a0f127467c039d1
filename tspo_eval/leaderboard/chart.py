"""PNG chart of a leaderboard: accuracy and paired Δ per benchmark and run, each with its interval.

One column of panels per benchmark:

* top: each run's overall accuracy as a point with its bootstrap CI;
* middle: each compared run's paired Δ vs its baseline (percentage points) with the bootstrap CI
  of the Δ, around a line at 0 -- the number the leaderboard is about, so its uncertainty is drawn,
  not only written;
* bottom (``--published`` only): the TSPO paper's reference numbers, hollow markers, no
  intervals, labelled as reported, not measured.

Points, not bars: a bar's length reads as the value from 0, so its axis would have to start at
0 and a difference of a few points would vanish. Every axis is fitted to what it shows (with
some padding, within 0-100 % for accuracies) and a Δ axis always shows 0.
"""
from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from tspo_eval.atomic_files import atomic_write
from tspo_eval.leaderboard.board import Leaderboard, Row
from tspo_eval.leaderboard.published import PublishedResult

COLOURS = {"uniform": "#9e9e9e", "tspo": "#1f77b4", "clip": "#ff7f0e", "index": "#2ca02c", "unknown": "#8c564b"}
MIN_ACCURACY_SPAN = 4.0   # percentage points shown at least on an accuracy axis
MIN_DELTA_SPAN = 2.0      # percentage points shown at least on a Δ axis


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def axis_limits(low: Sequence[float], high: Sequence[float], *, min_span: float,
                floor: float | None = None, ceiling: float | None = None,
                include: Sequence[float] = (), headroom: float = 0.0) -> tuple[float, float]:
    """Y limits covering every ``[low, high]`` (and ``include``) with 8 % padding, at least ``min_span`` wide.

    ``headroom``: extra room above, as a fraction of the span (for labels over the points);
    ``floor``/``ceiling`` clip the result (0 and 100 for accuracies).
    """
    values = _finite(list(low) + list(high) + list(include))
    if not values:
        return (0.0, 100.0) if floor is not None else (-1.0, 1.0)
    lo, hi = min(values), max(values)
    pad = max(0.08 * (hi - lo), (min_span - (hi - lo)) / 2, 0.5)
    lo, hi = lo - pad, hi + pad
    hi += headroom * (hi - lo)
    if floor is not None and lo < floor:
        hi, lo = min(hi + (floor - lo), ceiling if ceiling is not None else math.inf), floor
    if ceiling is not None and hi > ceiling:
        lo, hi = max(lo - (hi - ceiling), floor if floor is not None else -math.inf), ceiling
    return lo, hi


def _tick_labels(board: Leaderboard, rows: list[Row]) -> list[str]:
    """Short labels: a user-given name, else ``<frame source>-<K>`` under the model's last name part."""
    from tspo_eval.leaderboard.run import default_name

    runs = {(r.benchmark, r.name): r for r in board.runs}
    several_models = len({r.model for r in rows}) > 1
    labels = []
    for row in rows:
        run = runs.get((row.benchmark, row.run))
        if run is None or run.named:
            labels.append(row.run)
            continue
        tail = run.model.rstrip("/").split("/")[-1]
        tail = tail if len(tail) <= 22 else tail[:21] + "…"
        labels.append(f"{tail}\n{default_name(run)}" if several_models else default_name(run))
    return labels


def _interval(value: float, low: float, high: float) -> tuple[float, float]:
    """Error-bar lengths below and above ``value`` (0 where the bound is unknown)."""
    below = 0.0 if math.isnan(low) else max(0.0, value - low)
    above = 0.0 if math.isnan(high) else max(0.0, high - value)
    return below, above


def _points(ax, labels: list[str], values: list[float], intervals: list[tuple[float, float]] | None,
            colours: list[str], hollow: bool = False) -> None:
    """One marker per label (with its error bar when ``intervals`` is given) at x = 0, 1, ..."""
    for x, (value, colour) in enumerate(zip(values, colours)):
        if math.isnan(value):
            continue
        yerr = None if intervals is None else [[intervals[x][0]], [intervals[x][1]]]
        ax.errorbar([x], [value], yerr=yerr, fmt="D" if hollow else "o", markersize=7, capsize=5,
                    color=colour, ecolor=colour, elinewidth=1.6,
                    markerfacecolor="white" if hollow else colour, markeredgecolor=colour)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.grid(axis="y", alpha=0.3)


def _label_above(ax, x: int, value: float, upper: float, text: str) -> None:
    """``text`` centred just above the point or the top of its error bar."""
    top = value if math.isnan(upper) else max(value, upper)
    ax.annotate(text, (x, top), textcoords="offset points", xytext=(0, 6), ha="center", va="bottom", fontsize=7)


def _accuracy_panel(ax, board: Leaderboard, bench: str, rows: list[Row], conf: int) -> None:
    values = [r.accuracy for r in rows]
    intervals = [_interval(r.accuracy, r.accuracy_low, r.accuracy_high) for r in rows]
    _points(ax, _tick_labels(board, rows), values, intervals,
            [COLOURS.get(r.frame_source, COLOURS["unknown"]) for r in rows])
    for x, r in enumerate(rows):
        if not math.isnan(r.accuracy):
            _label_above(ax, x, r.accuracy, r.accuracy_high, f"{r.accuracy:.1f}")
    ax.set_ylim(*axis_limits([r.accuracy_low for r in rows] + values, [r.accuracy_high for r in rows] + values,
                             min_span=MIN_ACCURACY_SPAN, floor=0.0, ceiling=100.0, headroom=0.1))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{bench}\naccuracy, {conf}% bootstrap CI", fontsize=10)


def _delta_panel(ax, board: Leaderboard, rows: list[Row], conf: int) -> None:
    compared = [r for r in rows if r.baseline is not None and not math.isnan(r.delta)]
    deltas = [r.delta if r in compared else math.nan for r in rows]
    intervals = [_interval(r.delta, r.delta_low, r.delta_high) if r in compared else (0.0, 0.0) for r in rows]
    ax.axhline(0.0, color="black", linewidth=0.8)
    _points(ax, _tick_labels(board, rows), deltas, intervals,
            [COLOURS.get(r.frame_source, COLOURS["unknown"]) for r in rows])
    for x, r in enumerate(rows):
        if r in compared:
            bounds = "" if math.isnan(r.delta_low) else f"\n[{r.delta_low:+.1f}, {r.delta_high:+.1f}]"
            _label_above(ax, x, r.delta, r.delta_high, f"{r.delta:+.1f}{bounds}")
        elif r.role == "baseline":
            ax.annotate("baseline", (x, 0.0), textcoords="offset points", xytext=(0, 4), ha="center",
                        fontsize=7, style="italic", color="0.4")
    ax.set_ylim(*axis_limits([r.delta_low for r in compared] + [r.delta for r in compared],
                             [r.delta_high for r in compared] + [r.delta for r in compared],
                             min_span=MIN_DELTA_SPAN, include=[0.0], headroom=0.2))
    ax.set_ylabel("Δ vs baseline (pp)")
    ax.set_title(f"paired Δ vs baseline, {conf}% bootstrap CI", fontsize=9)


def _published_panel(ax, bench: str, published: Sequence[PublishedResult]) -> None:
    ref = [p for p in published if p.benchmark == bench]
    if not ref:
        ax.axis("off")
    else:
        values = [p.accuracy for p in ref]
        _points(ax, [f"{p.model} {p.frame_source}" for p in ref], values, None,
                [COLOURS.get(p.frame_source, COLOURS["unknown"]) for p in ref], hollow=True)
        for x, value in enumerate(values):
            _label_above(ax, x, value, math.nan, f"{value:.1f}")
        ax.set_ylim(*axis_limits(values, values, min_span=MIN_ACCURACY_SPAN, floor=0.0, ceiling=100.0,
                                 headroom=0.1))
        ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{bench}\nTSPO paper (reported, not measured)", fontsize=9, style="italic")


def leaderboard_figure(board: Leaderboard, published: Sequence[PublishedResult] = ()):
    """The chart as a ``matplotlib.figure.Figure`` (no pyplot, no global state); axes ``[row][benchmark]``."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    benches = board.benchmarks
    n_rows = 3 if published else 2
    widest = max([len(board.select(b)) for b in benches] + [1])
    panel_width = max(3.8, 0.9 * widest + 1.6)
    fig = Figure(figsize=(panel_width * max(1, len(benches)), 3.3 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, max(1, len(benches)), squeeze=False)
    conf = round(100 * board.settings["confidence"])
    for col, bench in enumerate(benches):
        rows = board.select(bench)
        _accuracy_panel(axes[0][col], board, bench, rows, conf)
        _delta_panel(axes[1][col], board, rows, conf)
        if published:
            _published_panel(axes[2][col], bench, published)
    used = sorted({r.frame_source for r in board.rows} | {p.frame_source for p in published})
    handles = [Line2D([], [], marker="o", linestyle="", color=COLOURS.get(s, COLOURS["unknown"]), label=s)
               for s in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, len(used)), fontsize=8, frameon=False)
    return fig


def plot_leaderboard(board: Leaderboard, path: str | Path, published: Sequence[PublishedResult] = ()) -> Path:
    """Draw the chart into ``path`` (PNG, written atomically) and return the path."""
    buffer = io.BytesIO()
    leaderboard_figure(board, published).savefig(buffer, format="png", dpi=110)
    out = Path(path)
    atomic_write(out, buffer.getvalue())
    return out
