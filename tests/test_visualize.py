"""Contact sheet and score plot: a real TrueType font, wrapped titles that end a cut with "…",
a legend that hides no marker, the uniform frames drawn for comparison, atomic PNG writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image, ImageFont

from tspo_eval.visualize import (
    ELLIPSIS,
    contact_sheet,
    fit_lines,
    load_font,
    score_figure,
    score_timeline,
)

LONG_TITLE = "clip.mp4 | " + " ".join(["What colour is the needle that appears after the man walks in?"] * 5)


def test_fit_lines_wraps_at_words_and_ends_a_cut_with_an_ellipsis() -> None:
    lines = fit_lines(LONG_TITLE, 60, len, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith(ELLIPSIS)
    assert all(len(line) <= 60 for line in lines)
    assert " ".join(lines).replace(ELLIPSIS, "").split()[:8] == LONG_TITLE.split()[:8]  # words kept whole, in order
    assert fit_lines("short title", 60, len) == ["short title"]
    assert fit_lines("a " + "x" * 100, 30, len, max_lines=3)[1] == "x" * 30      # one over-long word is cut
    spaced = fit_lines("exactly   forty   characters of spaced words", 200, len)
    assert spaced == ["exactly forty characters of spaced words"]


def test_contact_sheet_font_spacing_wrapping_and_mode(tmp_path: Path) -> None:
    font = load_font(15)
    assert isinstance(font, ImageFont.FreeTypeFont)   # a scalable TrueType font, not the bitmap default
    assert font.getlength("WW WW") - font.getlength("WWWW") >= 3   # a space has a real width

    frames = np.full((3, 48, 64, 3), 200, dtype=np.uint8)
    old_umask = os.umask(0o022)
    try:
        path = contact_sheet(frames, [0.0, 1.5, 3725.0], tmp_path / "sheet.png", columns=3, thumb_width=160,
                             title="WWWW WWWW")
    finally:
        os.umask(old_umask)
    assert (path.stat().st_mode & 0o777) == 0o644                     # atomic_files: mode from the umask
    assert not [p for p in tmp_path.iterdir() if p.name != "sheet.png"]   # no temporary file left
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    band = pixels[: 15 + 12] < 128                                    # the title band, ink pixels
    columns = np.flatnonzero(band.any(axis=0))
    gaps = np.diff(columns) - 1
    assert columns.size and gaps.max() >= 4, "the words of the title run together"

    one_line = contact_sheet(frames, [0, 1, 2], tmp_path / "one.png", columns=3, thumb_width=160, title="short")
    two_lines = contact_sheet(frames, [0, 1, 2], tmp_path / "two.png", columns=3, thumb_width=160, title=LONG_TITLE)
    with Image.open(one_line) as a, Image.open(two_lines) as b:
        assert b.size[1] > a.size[1]                                  # a long title takes a second line
        assert b.size[1] - a.size[1] < 40                             # ... and only one more


def _bboxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_score_plot_legend_outside_and_uniform_overlay(tmp_path: Path) -> None:
    times = np.arange(40.0)
    scores = np.sin(times / 5)
    chosen = [30, 35, 38, 39]                     # the last frames: where an upper-right legend used to sit
    uniform = [0, 13, 26, 39]
    figure = score_figure(times, scores, chosen, title=LONG_TITLE, uniform_positions=uniform)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = figure.axes[0]
    legend = figure.legends[0]
    assert not _bboxes_overlap(legend.get_window_extent(renderer), axes.get_window_extent(renderer))
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["score", "uniform (4)", "chosen (4)"]
    offsets = {c.get_label(): c.get_offsets() for c in axes.collections}
    np.testing.assert_allclose(offsets["uniform (4)"][:, 0], times[uniform])
    np.testing.assert_allclose(offsets["chosen (4)"][:, 0], times[chosen])
    title = figure._suptitle.get_text()
    assert title.count("\n") == 1 and title.endswith(ELLIPSIS)
    with pytest.raises(Exception, match="positions"):
        score_figure(times, scores, [40])

    path = score_timeline(times, scores, chosen, tmp_path / "plot.png", uniform_positions=uniform)
    with Image.open(path) as image:
        assert image.size[0] >= 1000 and image.format == "PNG"
