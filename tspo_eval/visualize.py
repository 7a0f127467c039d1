"""Pictures of a selection: a contact sheet of the chosen frames and a score timeline plot (PNG).

Both are written atomically (temporary file in the target folder, then ``os.replace``).
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from tspo_eval.errors import InputError


def format_time(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour) with tenths when not whole."""
    total = float(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs:04.1f}" if abs(secs - round(secs)) > 0.05 else f"{int(round(secs)):02d}"
    return f"{int(hours)}:{int(minutes):02d}:{sec_text}" if hours >= 1 else f"{int(minutes)}:{sec_text}"


def _atomic_png(path: str | os.PathLike, save) -> Path:
    """Call ``save(tmp_path)`` then move the file to ``path``."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        raise InputError(f"{target}: folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def contact_sheet(
    frames: np.ndarray,
    timestamps: Sequence[float],
    path: str | os.PathLike,
    *,
    columns: int = 8,
    thumb_width: int = 192,
    title: str | None = None,
) -> Path:
    """Grid of ``frames`` (uint8 ``[K, H, W, 3]``), each labelled with its time; saved as PNG at ``path``."""
    from PIL import Image, ImageDraw

    if len(frames) == 0:
        raise InputError("no frames to put on a contact sheet")
    if len(frames) != len(timestamps):
        raise InputError(f"{len(frames)} frames but {len(timestamps)} timestamps")
    height, width = frames.shape[1:3]
    thumb_height = max(1, round(thumb_width * height / width))
    label_h, title_h = 18, (22 if title else 0)
    cols = min(columns, len(frames))
    rows = math.ceil(len(frames) / cols)
    sheet = Image.new("RGB", (cols * thumb_width, title_h + rows * (thumb_height + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 4), " ".join(title.split()), fill="black")
    for i, (frame, time) in enumerate(zip(frames, timestamps)):
        x, y = (i % cols) * thumb_width, title_h + (i // cols) * (thumb_height + label_h)
        thumb = Image.fromarray(np.ascontiguousarray(frame)).resize((thumb_width, thumb_height), Image.BILINEAR)
        sheet.paste(thumb, (x, y))
        draw.text((x + 4, y + thumb_height + 3), f"#{i + 1}  {format_time(time)}", fill="black")
    return _atomic_png(path, lambda tmp: sheet.save(tmp, format="PNG"))


def score_timeline(
    candidate_times: Sequence[float],
    scores: Sequence[float],
    selected_positions: Sequence[int],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    score_label: str = "score",
) -> Path:
    """Line plot of the candidate scores over time with the chosen candidates marked; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    times = np.asarray(candidate_times, dtype=float)
    values = np.asarray(scores, dtype=float)
    if len(times) == 0 or len(times) != len(values):
        raise InputError(f"cannot plot {len(values)} scores over {len(times)} candidate times")
    chosen = np.asarray(selected_positions, dtype=int)
    figure = Figure(figsize=(12, 3.6), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(times, values, color="tab:blue", linewidth=1.0, label=score_label)
    if len(chosen):
        axes.scatter(times[chosen], values[chosen], color="tab:red", s=18, zorder=3, label=f"chosen ({len(chosen)})")
        for t in times[chosen]:
            axes.axvline(t, color="tab:red", alpha=0.15, linewidth=0.8)
    axes.set_xlabel("time (s)")
    axes.set_ylabel(score_label)
    axes.margins(x=0.01)
    if title:
        axes.set_title(" ".join(title.split()), fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return _atomic_png(path, lambda tmp: figure.savefig(tmp, format="png"))
