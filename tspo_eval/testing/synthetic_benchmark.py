"""A small generated benchmark of real video files with known answers (smoke runs, tests).

Each video shows a dim moving background with ``questions_per_video`` full-frame coloured
"needle" segments at known times. Questions alternate between two types:

* ``needle_color``: "What colour fills the whole frame during the <k-th> coloured segment?"
  (options: colour names; answer: the k-th needle's colour);
* ``needle_position``: "In which part of the video does the <colour> segment appear?"
  (options: first / second / third / last quarter).

Every question carries the needle's time span in seconds, so a frame selector can be scored
without any MLLM. The annotation file is the ``synthetic`` benchmark's format
(``tspo_eval.benchmarks.synthetic``).
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np

from tspo_eval.atomic_files import atomic_write
from tspo_eval.errors import InputError
from tspo_eval.testing.videos import frame_pattern, write_test_video

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 230), "yellow": (235, 220, 20),
    "magenta": (220, 30, 220), "cyan": (20, 220, 220), "white": (245, 245, 245), "orange": (245, 140, 10),
}
QUARTERS = ["the first quarter", "the second quarter", "the third quarter", "the last quarter"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
ANNOTATION_NAME = "synthetic.json"


def _plan_needles(rng: random.Random, n_needles: int, seconds: float) -> list[tuple[float, float, int]]:
    """(start_s, end_s, quarter) of each needle, in temporal order, in distinct time slots."""
    per_quarter = max(1, math.ceil(n_needles / 4))
    n_slots = 4 * per_quarter
    slot = seconds / n_slots
    slots = sorted(rng.sample(range(n_slots), n_needles))
    return [(s * slot + 0.2 * slot, s * slot + 0.8 * slot, s // per_quarter) for s in slots]


def _painter(needles: list[tuple[int, int, tuple[int, int, int]]], n_frames: int, height: int, width: int):
    def paint(i: int) -> np.ndarray:
        for first, last, rgb in needles:
            if first <= i <= last:
                return np.broadcast_to(np.asarray(rgb, dtype=np.uint8), (height, width, 3)).copy()
        return (frame_pattern(i, height, width, n_frames) // 4).astype(np.uint8)   # dim background
    return paint


def build_synthetic_benchmark(out_dir: str | Path, n_videos: int = 3, questions_per_video: int = 2,
                              seconds: float = 20, fps: float = 10.0, *, seed: int = 0, width: int = 64,
                              height: int = 48) -> tuple[Path, Path]:
    """Write ``n_videos`` PyAV videos and their question file under ``out_dir``.

    Returns ``(annotation_path, video_root)``: ``out_dir/synthetic.json`` and ``out_dir/videos``.
    Deterministic for a given ``seed``; answers are spread over the option letters.
    """
    if n_videos < 1 or not 1 <= questions_per_video <= len(ORDINALS):
        raise InputError(f"need n_videos >= 1 and 1 <= questions_per_video <= {len(ORDINALS)}")
    n_frames = int(round(seconds * fps))
    if n_frames < 8 * 4 * math.ceil(questions_per_video / 4):
        raise InputError(f"{seconds} s at {fps} fps is too short for {questions_per_video} needles")
    rng = random.Random(seed)
    out_dir = Path(out_dir)
    video_root = out_dir / "videos"
    video_root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for v in range(n_videos):
        name = f"synth_{v:03d}.mp4"
        colors = rng.sample(list(COLORS), questions_per_video)
        plan = _plan_needles(rng, questions_per_video, n_frames / fps)
        frames = [(int(math.ceil(s * fps)), int(math.floor(e * fps)), COLORS[c]) for (s, e, _), c in zip(plan, colors)]
        write_test_video(video_root / name, n_frames=n_frames, fps=fps, width=width, height=height,
                         painter=_painter(frames, n_frames, height, width), gop=max(1, int(fps)))
        for q, ((start, end, quarter), color, (first, last, _)) in enumerate(zip(plan, colors, frames)):
            span = [round(first / fps, 6), round((last + 1) / fps, 6)]
            if q % 2 == 0:
                distractors = rng.sample([c for c in COLORS if c != color], 3)
                correct, pool = color, distractors
                question = f"What colour fills the whole frame during the {ORDINALS[q]} coloured segment of the video?"
                task = "needle_color"
            else:
                correct, pool = QUARTERS[quarter], [x for x in QUARTERS if x != QUARTERS[quarter]]
                question = f"In which part of the video does the {color} segment appear?"
                task = "needle_position"
            answer_pos = (v * questions_per_video + q + seed) % 4
            options = list(pool[:3])
            options.insert(answer_pos, correct)
            rows.append({"question_id": f"synth_{v:03d}_q{q}", "video": name, "question": question,
                         "options": options, "answer": "ABCD"[answer_pos], "duration": n_frames / fps,
                         "task_type": task, "time_spans": [span], "needle_color": color, "fps": fps})
    annotation_path = out_dir / ANNOTATION_NAME
    atomic_write(annotation_path, json.dumps(rows, indent=1))
    return annotation_path, video_root
