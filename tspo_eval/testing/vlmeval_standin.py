"""A stand-in for VLMEvalKit's video inference, for tests where VLMEvalKit is not installed.

VLMEvalKit is not on PyPI and CI cannot fetch it, so the VLMEvalKit models are tested against
this re-implementation of the call order they meet there.  Written in our own words from
VLMEvalKit snapshot e8e78f05 (no code copied); each piece names what it mirrors:

* :class:`StandInVideoDataset` - ``vlmeval/dataset/video_base.py``, ``VideoBaseDataset.__init__``
  and its frame-path helpers: ``dataset_name``, ``prepare_dataset(name)`` -> ``root`` /
  ``data_file``, ``data`` (the TSV, ``index`` added when missing), ``nframe`` / ``fps``,
  ``frame_root`` = ``$LMUData/images/<dataset>``, ``frame-<i>-of-<n>.jpg`` names;
* :class:`VideoMMEStyle` - the message layout of ``vlmeval/dataset/videomme.py``,
  ``VideoMME.build_prompt``: no id column, the video as ``<root>/video/<video>.mp4`` (or its
  frames as images), the question and options in a ``Question: ...\\nAnswer: `` text;
* :func:`infer_video_job` - ``vlmeval/inference_video.py``, ``infer_data`` (per sample, in table
  order: the model's ``nframe`` is set to the dataset's only when both are > 0 and differ, to
  ``None`` for an fps dataset when the model has no ``fps``; ``use_custom_prompt(name)``, which
  VLMEvalKit refuses for a dataset without ``nframe``, selects ``model.build_prompt(row,
  dataset=..., video_llm=...)`` over ``dataset.build_prompt(position, video_llm=...)``; then
  ``generate(message=..., dataset=name)``) and ``infer_data_job_video`` (the table with a
  ``prediction`` column written to the result file); same signature, so the launcher's job
  wrapper can wrap it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from tspo_eval.atomic_files import atomic_output


def lmu_root() -> Path:
    return Path(os.environ.get("LMUData") or Path.home() / "LMUData")


class StandInVideoDataset:
    """The ``VideoBaseDataset`` state our datasets and models read (see the module docstring)."""

    def __init__(self, dataset: str = "unknown", pack: bool = False, nframe: int = 0, fps: float = -1) -> None:
        self.dataset_name = dataset
        paths = self.prepare_dataset(dataset)
        self.frame_root = str(lmu_root() / "images" / dataset)
        os.makedirs(self.frame_root, exist_ok=True)
        self.data_root = paths["root"]
        self.data_file = paths["data_file"]
        self.data = pd.read_csv(self.data_file, sep="\t")
        if "index" not in self.data:
            self.data["index"] = range(len(self.data))
        self.nframe, self.fps, self.pack = nframe, fps, pack
        if self.nframe > 0 and self.fps > 0:
            raise ValueError("a video dataset takes nframe or fps, not both")

    def __len__(self) -> int:
        return len(self.data)

    def prepare_dataset(self, dataset: str) -> dict[str, str]:  # pragma: no cover - subclasses
        raise NotImplementedError

    def frame_paths(self, video: str) -> list[str]:
        folder = Path(self.frame_root) / video
        folder.mkdir(parents=True, exist_ok=True)
        return [str(folder / f"frame-{i}-of-{self.nframe}.jpg") for i in range(1, self.nframe + 1)]

    def frame_paths_fps(self, video: str, num_frames: int) -> list[str]:
        folder = Path(self.frame_root) / video
        folder.mkdir(parents=True, exist_ok=True)
        return [str(folder / f"frame-{i}-of-{num_frames}-{self.fps}fps.jpg") for i in range(1, num_frames + 1)]


class VideoMMEStyle(StandInVideoDataset):
    """A dataset built like VLMEvalKit's Video-MME: TSV ``index, video, question, candidates, answer``
    and videos at ``<root>/video/<video>.mp4``; ids follow from the row order (3 per video)."""

    def __init__(self, tsv: str | os.PathLike, root: str | os.PathLike, dataset: str = "Video-MME",
                 nframe: int = 0, fps: float = -1) -> None:
        self._tsv, self._root = str(tsv), str(root)
        super().__init__(dataset=dataset, nframe=nframe, fps=fps)

    def prepare_dataset(self, dataset: str) -> dict[str, str]:
        return {"root": self._root, "data_file": self._tsv}

    def save_frames(self, video: str) -> list[str]:
        """The dataset's own frames (JPEG files), evenly spaced as VLMEvalKit saves them."""
        from PIL import Image

        from tspo_eval.video import open_video

        path = os.path.join(self.data_root, "video", video + ".mp4")
        with open_video(path, "pyav") as reader:
            n = reader.metadata.n_frames
            count = self.nframe if self.nframe > 0 else 4
            paths = self.frame_paths(video) if self.nframe > 0 else self.frame_paths_fps(video, count)
            indices = [int(i * n / (count + 1)) for i in range(1, count + 1)]
            for frame, target in zip(reader.get_frames(indices), paths):
                with atomic_output(target) as handle:
                    Image.fromarray(frame).save(handle, format="JPEG")
        return paths

    def build_prompt(self, line: Any, video_llm: bool) -> list[dict[str, str]]:
        if isinstance(line, int):
            line = self.data.iloc[line]
        message = [{"type": "text", "value": ""}]
        if video_llm:
            message.append({"type": "video", "value": os.path.join(self.data_root, "video", line["video"] + ".mp4")})
        else:
            message += [{"type": "image", "value": p} for p in self.save_frames(line["video"])]
        message.append({"type": "text", "value": "\nSelect the best answer.\n"})
        options = "\n".join(eval(line["candidates"]))  # the TSV holds a Python list, as VLMEvalKit's does
        message.append({"type": "text", "value": f"Question: {line['question']}\n{options}\nAnswer: "})
        return message


def infer_video_job(model: Any, work_dir: str, model_name: str, dataset: Any, result_file: str | None = None,
                    verbose: bool = False) -> Any:
    """Answer every row of ``dataset`` in VLMEvalKit's per-sample call order; write ``result_file``.

    ``model``: a model object, or a zero-argument factory (VLMEvalKit builds it from its name).
    Returns the model object, as VLMEvalKit does.
    """
    model = model() if callable(model) and not hasattr(model, "generate") else model
    name = dataset.dataset_name
    video_llm = getattr(model, "VIDEO_LLM", False)
    answers = []
    for position in range(len(dataset.data)):
        current = getattr(model, "nframe", None)
        if current is not None and current > 0:
            if dataset.nframe > 0:
                if current != dataset.nframe:
                    model.nframe = dataset.nframe
            elif getattr(model, "fps", 0) == 0:
                raise ValueError(f"fps is not suitable for {model_name}")
            else:
                model.nframe = None
        if hasattr(model, "use_custom_prompt") and model.use_custom_prompt(name):
            if dataset.nframe == 0:
                raise ValueError(f"nframe must be set for custom prompt ({model_name})")
            message = model.build_prompt(dataset.data.iloc[position], dataset=dataset, video_llm=video_llm)
        else:
            message = dataset.build_prompt(position, video_llm=video_llm)
        answers.append(model.generate(message=message, dataset=name))
    if result_file is None:
        result_file = os.path.join(work_dir, f"{model_name}_{name}.xlsx")
    table = dataset.data.copy()
    table["prediction"] = [str(a) for a in answers]
    with atomic_output(result_file) as handle:
        table.to_excel(handle, index=False)
    return model


# ---- small benchmarks in the layouts the stand-in datasets read --------------------------------
_LVBENCH_TYPES = {"needle_color": ["entity recognition"], "needle_position": ["temporal grounding", "reasoning"]}


def build_lvbench_style(out_dir: str | os.PathLike, n_videos: int = 2, questions_per_video: int = 2,
                        first_uid: int = 100) -> tuple[Path, Path]:
    """An LVBench ``video_info.meta.jsonl`` (one video per line, ``qa`` list with ``uid``) over the
    synthetic benchmark's videos; returns (annotation file, video root)."""
    import json

    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    out_dir = Path(out_dir)
    annotations, videos = build_synthetic_benchmark(out_dir / "synthetic", n_videos=n_videos,
                                                    questions_per_video=questions_per_video)
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in json.loads(annotations.read_text(encoding="utf-8")):
        by_video.setdefault(row["video"], []).append(row)
    lines = []
    uid = first_uid
    for video, rows in sorted(by_video.items()):
        qa = []
        for row in rows:
            options = "\n".join(f"({'ABCD'[j]}) {o}" for j, o in enumerate(row["options"]))
            qa.append({"uid": str(uid), "question": f"{row['question']}\n{options}", "answer": row["answer"],
                       "question_type": _LVBENCH_TYPES[row["task_type"]], "time_reference": "00:01-00:05"})
            uid += 1
        lines.append(json.dumps({"key": Path(video).stem, "type": "synthetic",
                                 "video_info": {"duration_minutes": 0.33, "fps": 10.0}, "qa": qa}))
    path = out_dir / "video_info.meta.jsonl"
    with atomic_output(path) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
    return path, videos


def build_videomme_style(out_dir: str | os.PathLike, n_videos: int = 2) -> tuple[Path, Path, list[str]]:
    """A Video-MME-style TSV (3 questions per video, no id column) and ``<root>/video/<id>.mp4``;
    returns (TSV, root, the Video-MME question ids of its rows: ``001-1`` ...)."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    out_dir = Path(out_dir)
    _, videos = build_synthetic_benchmark(out_dir / "synthetic", n_videos=n_videos, questions_per_video=3)
    root = out_dir / "videomme"
    (root / "video").mkdir(parents=True, exist_ok=True)
    rows, ids = [], []
    for v, source in enumerate(sorted(videos.glob("*.mp4"))):
        video_id = f"vid{v:03d}"
        target = root / "video" / f"{video_id}.mp4"
        if not target.exists():
            target.symlink_to(source)
        for q in range(3):
            rows.append({"index": len(rows), "video": video_id, "question": f"Which colour shows up in part {q + 1}?",
                         "candidates": str(["A. red", "B. green", "C. blue", "D. none"]), "answer": "ABC"[q]})
            ids.append(f"{v + 1:03d}-{q + 1}")
    tsv = out_dir / "Video-MME.tsv"
    with atomic_output(tsv) as handle:
        handle.write(pd.DataFrame(rows).to_csv(sep="\t", index=False).encode("utf-8"))
    return tsv, root, ids
