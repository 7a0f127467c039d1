"""Pictures of a selection: a contact sheet of the chosen frames and a score timeline plot (PNG).

Text is drawn with a real TrueType font (matplotlib's DejaVu Sans, which matplotlib always
ships), so words keep their spacing; a title too long for the picture is wrapped onto at most
two lines and a cut ends with "…".  Both pictures are written through
:mod:`tspo_eval.atomic_files` (temporary file in the target folder, fsync, ``os.replace``).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from tspo_eval.atomic_files import atomic_output
from tspo_eval.errors import InputError

ELLIPSIS = "…"
TITLE_MAX_LINES = 2
TITLE_FONT_SIZE = 15
LABEL_FONT_SIZE = 12
TITLE_POINTS = 10           # score plot title, in points (matplotlib's default font is DejaVu Sans too)


def format_time(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour) with tenths when not whole."""
    total = float(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs:04.1f}" if abs(secs - round(secs)) > 0.05 else f"{int(round(secs)):02d}"
    return f"{int(hours)}:{int(minutes):02d}:{sec_text}" if hours >= 1 else f"{int(minutes)}:{sec_text}"


def font_path() -> Path | None:
    """matplotlib's DejaVuSans.ttf (``matplotlib.get_data_path()``), or None when it is not there."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return path if path.is_file() else None


@lru_cache(maxsize=8)
def load_font(size: int):
    """A TrueType ``ImageFont`` of ``size`` px: DejaVu Sans, else Pillow's own scalable default."""
    from PIL import ImageFont

    path = font_path()
    if path is not None:
        return ImageFont.truetype(str(path), size)
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except TypeError:  # pragma: no cover - old Pillow: the bitmap font
        return ImageFont.load_default()


def fit_lines(text: str, max_width: float, measure: Callable[[str], float], max_lines: int = TITLE_MAX_LINES,
              ellipsis: str = ELLIPSIS) -> list[str]:
    """Greedy word wrap of ``text`` into lines no wider than ``max_width`` (as ``measure`` says).

    At most ``max_lines`` lines; when the text does not fit, the last line is shortened and ends
    with ``ellipsis``. A single word wider than a line is cut by characters.
    """
    words = " ".join(str(text).split()).split(" ")
    lines: list[str] = []
    current = ""
    index = 0
    while index < len(words):
        word = words[index]
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= max_width:
            current, index = candidate, index + 1
            continue
        if not current:  # one word wider than the line: cut it by characters
            cut = max(1, max(n for n in range(1, len(word) + 1) if n == 1 or measure(word[:n]) <= max_width))
            current, words[index] = word[:cut], word[cut:]
            if not words[index]:
                index += 1
        lines.append(current)
        current = ""
        if len(lines) == max_lines:
            break
    if current and len(lines) < max_lines:
        lines.append(current)
        current = ""
    if index < len(words) or current:  # something was left out
        last = lines[-1] if lines else ""
        while last and measure(last.rstrip() + ellipsis) > max_width:
            last = last[:-1]
        lines[-1:] = [last.rstrip() + ellipsis]
    return [line for line in lines if line] or [""]


def contact_sheet(
    frames: np.ndarray,
    timestamps: Sequence[float],
    path: str | os.PathLike,
    *,
    columns: int = 8,
    thumb_width: int = 192,
    title: str | None = None,
) -> Path:
    """Grid of ``frames`` (uint8 ``[K, H, W, 3]``), each labelled with its rank and time; PNG at ``path``.

    ``title`` is wrapped to the sheet's width (two lines at most, a cut ends with "…").
    """
    from PIL import Image, ImageDraw

    if len(frames) == 0:
        raise InputError("no frames to put on a contact sheet")
    if len(frames) != len(timestamps):
        raise InputError(f"{len(frames)} frames but {len(timestamps)} timestamps")
    height, width = frames.shape[1:3]
    thumb_height = max(1, round(thumb_width * height / width))
    title_font, label_font = load_font(TITLE_FONT_SIZE), load_font(LABEL_FONT_SIZE)
    cols = min(columns, len(frames))
    rows = math.ceil(len(frames) / cols)
    sheet_width = cols * thumb_width
    margin = 6
    title_lines = fit_lines(title, sheet_width - 2 * margin, title_font.getlength) if title else []
    line_h = TITLE_FONT_SIZE + 5
    title_h = len(title_lines) * line_h + (2 * margin if title_lines else 0)
    label_h = LABEL_FONT_SIZE + 8
    sheet = Image.new("RGB", (sheet_width, title_h + rows * (thumb_height + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, line in enumerate(title_lines):
        draw.text((margin, margin + n * line_h), line, fill="black", font=title_font)
    for i, (frame, time) in enumerate(zip(frames, timestamps)):
        x, y = (i % cols) * thumb_width, title_h + (i // cols) * (thumb_height + label_h)
        thumb = Image.fromarray(np.ascontiguousarray(frame)).resize((thumb_width, thumb_height), Image.BILINEAR)
        sheet.paste(thumb, (x, y))
        draw.text((x + 4, y + thumb_height + 3), f"#{i + 1}  {format_time(time)}", fill="black", font=label_font)
    target = Path(path)
    with atomic_output(target) as handle:
        sheet.save(handle, format="PNG")
    return target


def score_timeline(
    candidate_times: Sequence[float],
    scores: Sequence[float],
    selected_positions: Sequence[int],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    score_label: str = "score",
    uniform_positions: Sequence[int] | None = None,
) -> Path:
    """Line plot of the candidate scores over time with the chosen candidates marked; PNG at ``path``.

    ``candidate_times``/``scores``: ``[T]``; ``selected_positions``: positions into them.
    ``uniform_positions`` (positions too): the frames uniform sampling would take with the same
    budget, drawn as a second marker set for comparison. See :func:`score_figure`.
    """
    figure = score_figure(candidate_times, scores, selected_positions, title=title, score_label=score_label,
                          uniform_positions=uniform_positions)
    target = Path(path)
    with atomic_output(target) as handle:
        figure.savefig(handle, format="png")
    return target


def score_figure(
    candidate_times: Sequence[float],
    scores: Sequence[float],
    selected_positions: Sequence[int],
    *,
    title: str | None = None,
    score_label: str = "score",
    uniform_positions: Sequence[int] | None = None,
):
    """The ``matplotlib.figure.Figure`` of :func:`score_timeline` (no pyplot, no global state).

    The legend sits below the axes (outside them), so no marker is ever hidden under it; a
    long title is wrapped to the figure's width (two lines, a cut ends with "…").
    """
    from matplotlib.figure import Figure

    times = np.asarray(candidate_times, dtype=float)
    values = np.asarray(scores, dtype=float)
    if len(times) == 0 or len(times) != len(values):
        raise InputError(f"cannot plot {len(values)} scores over {len(times)} candidate times")
    chosen = np.asarray(selected_positions, dtype=int)
    uniform = np.asarray([] if uniform_positions is None else uniform_positions, dtype=int)
    for name, positions in (("selected", chosen), ("uniform", uniform)):
        if len(positions) and (positions.min() < 0 or positions.max() >= len(times)):
            raise InputError(f"{name} positions must lie in [0, {len(times) - 1}]")
    figure = Figure(figsize=(12, 3.8), dpi=100, layout="constrained")
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(times, values, color="tab:blue", linewidth=1.0, label=score_label)
    if len(uniform):
        axes.scatter(times[uniform], values[uniform], marker="D", s=22, facecolors="none", edgecolors="0.35",
                     linewidths=1.0, zorder=3, label=f"uniform ({len(uniform)})")
    if len(chosen):
        axes.scatter(times[chosen], values[chosen], color="tab:red", s=18, zorder=4, label=f"chosen ({len(chosen)})")
        for t in times[chosen]:
            axes.axvline(t, color="tab:red", alpha=0.15, linewidth=0.8)
    axes.set_xlabel("time (s)")
    axes.set_ylabel(score_label)
    axes.margins(x=0.01)
    if title:  # a figure title: above the axes and the legend alike, wrapped to the figure's width
        font = load_font(round(TITLE_POINTS * figure.dpi / 72))
        lines = fit_lines(title, 0.96 * figure.get_figwidth() * figure.dpi, font.getlength)
        figure.suptitle("\n".join(lines), fontsize=TITLE_POINTS)
    figure.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return figure
