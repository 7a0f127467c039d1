"""PNG chart of a leaderboard: overall accuracy per benchmark and run, with CI error bars.

One panel per benchmark; one bar per run, coloured by frame source, with its bootstrap CI as
an error bar and the paired Δ vs its baseline written above it.  Published reference numbers
(``--published``) go into a separate, labelled row of panels without error bars.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from tspo_eval.atomic_files import atomic_write
from tspo_eval.leaderboard.board import Leaderboard
from tspo_eval.leaderboard.published import PublishedResult

COLOURS = {"uniform": "#9e9e9e", "tspo": "#1f77b4", "clip": "#ff7f0e", "index": "#2ca02c", "unknown": "#8c564b"}


def _bars(ax, labels: list[str], values: list[float], colours: list[str], errors=None, hatch=None) -> None:
    positions = list(range(len(labels)))
    ax.bar(positions, values, color=colours, yerr=errors, capsize=4, hatch=hatch, edgecolor="black", linewidth=0.5)
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)


def _tick_labels(board: Leaderboard, rows: list) -> list[str]:
    """Short bar labels: a user-given name, else ``<frame source>-<K>`` under the model's last name part."""
    from tspo_eval.leaderboard.runs import default_name

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


def plot_leaderboard(board: Leaderboard, path: str | Path, published: Sequence[PublishedResult] = ()) -> Path:
    """Draw the chart into ``path`` (PNG, written atomically) and return the path."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas for PNG
    from matplotlib.patches import Patch


    benches = board.benchmarks
    n_rows = 2 if published else 1
    widest = max(len(board.select(b)) for b in benches)
    panel_width = max(3.6, 0.75 * widest + 1.2)
    fig = Figure(figsize=(panel_width * len(benches), 4.4 * n_rows))
    axes = fig.subplots(n_rows, len(benches), squeeze=False)
    conf = round(100 * board.settings["confidence"])
    for col, bench in enumerate(benches):
        ax = axes[0][col]
        rows = board.select(bench)
        values = [r.accuracy for r in rows]
        errors = [[0.0 if math.isnan(r.accuracy_low) else r.accuracy - r.accuracy_low for r in rows],
                  [0.0 if math.isnan(r.accuracy_high) else r.accuracy_high - r.accuracy for r in rows]]
        _bars(ax, _tick_labels(board, rows), values, [COLOURS.get(r.frame_source, COLOURS["unknown"]) for r in rows],
              errors)
        for i, r in enumerate(rows):
            if r.baseline is not None and not math.isnan(r.delta):
                top = r.accuracy_high if not math.isnan(r.accuracy_high) else r.accuracy
                ax.annotate(f"{r.delta:+.1f}", (i, top), textcoords="offset points", xytext=(0, 3),
                            ha="center", fontsize=8)
        ax.set_title(f"{bench}\nmeasured, {conf}% CI", fontsize=10)
        tops = [r.accuracy_high if not math.isnan(r.accuracy_high) else r.accuracy for r in rows]
        ax.set_ylim(0, min(110.0, max([t for t in tops if not math.isnan(t)] + [10.0]) + 10.0))
        if published:
            ref = [p for p in published if p.benchmark == bench]
            pax = axes[1][col]
            if ref:
                _bars(pax, [f"{p.model} {p.frame_source}" for p in ref], [p.accuracy for p in ref],
                      [COLOURS.get(p.frame_source, COLOURS["unknown"]) for p in ref], hatch="//")
                pax.set_ylim(0, min(110.0, max(p.accuracy for p in ref) + 10.0))
            else:
                pax.axis("off")
            pax.set_title(f"{bench}\nTSPO paper (reported, not measured)", fontsize=9, style="italic")
    used = sorted({r.frame_source for r in board.rows} | {p.frame_source for p in published})
    fig.legend(handles=[Patch(color=COLOURS.get(s, COLOURS["unknown"]), label=s) for s in used],
               loc="lower center", ncol=len(used), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    out = Path(path)
    atomic_write(out, buffer.getvalue())
    return out
