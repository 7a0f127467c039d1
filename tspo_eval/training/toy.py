"""The seed's toy example as files: one video whose beginning is a coloured segment, and 10 copies of
one "general" question about it in TSPO's training-JSONL format (``tspo10k``).

Video: ``seconds`` s at ``fps`` (default 60 s at 4 fps, 64 x 48): the first ``needle_seconds`` are
solid red, two later segments blue and green, the rest a dim moving pattern.  Question: "What
colour fills the frame at the beginning of the video?" (options red / blue / green / yellow).
The synthetic-reader answers it right only when a frame of the first segment is among those it
is shown.  Each row carries ``time_spans`` (our extension of the format) so the off-policy oracle
can be built; the reward of a "general" item is R_A + 1.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tspo_eval.atomic_files import atomic_write

QUESTION = "What colour fills the frame at the beginning of the video?"
OPTIONS = ("blue", "red", "green", "yellow")
ANSWER = "B"


def build_toy_example(out_dir: str | Path, *, seconds: int = 60, fps: float = 4.0, needle_seconds: float = 2.0,
                      copies: int = 10) -> tuple[Path, Path]:
    """Write ``out_dir/videos/toy.mp4`` and ``out_dir/example1.jsonl``; returns (jsonl, video folder)."""
    from tspo_eval.testing.synthetic_benchmark import COLORS
    from tspo_eval.testing.videos import frame_pattern, write_test_video

    out = Path(out_dir)
    n_frames = int(seconds * fps)
    segments = [(0.0, needle_seconds, "red"), (seconds / 3, seconds / 3 + 3, "blue"),
                (2 * seconds / 3, 2 * seconds / 3 + 3, "green")]

    def paint(i: int) -> np.ndarray:
        t = i / fps
        for start, end, color in segments:
            if start <= t < end:
                return np.broadcast_to(np.asarray(COLORS[color], np.uint8), (48, 64, 3)).copy()
        return (frame_pattern(i, 48, 64, n_frames) // 4).astype(np.uint8)

    write_test_video(out / "videos" / "toy.mp4", n_frames=n_frames, fps=fps, width=64, height=48, painter=paint,
                     gop=int(fps))
    last = (int(np.ceil(needle_seconds * fps)) - 1) / fps  # time of the last red frame
    options = "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(OPTIONS))
    row = {"video": "toy.mp4", "original_question": f"<image>\n{QUESTION}\n{options}",
           "original_answer": f"{ANSWER}. {OPTIONS['ABCD'.index(ANSWER)]}", "problem": QUESTION,
           "solution": f"<answer>{ANSWER.lower()}</answer>", "type": "general", "time_spans": [[0.0, last]]}
    lines = "".join(json.dumps({**row, "id": f"toy_{i}"}) + "\n" for i in range(copies))
    path = out / "example1.jsonl"
    atomic_write(path, lines)
    return path, out / "videos"
