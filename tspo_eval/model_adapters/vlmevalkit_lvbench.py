"""VLMEvalKit datasets in its own style for benchmarks it lacks: LVBench (and the synthetic smoke test).

VLMEvalKit has no LVBench. :func:`dataset_classes` combines (lazily, VLMEvalKit must be
importable) its ``VideoBaseDataset`` with :class:`TspoVideoMCQMixin`: a TSV made from the
original annotation file by this package's loader
(:func:`tspo_eval.benchmarks.vlmevalkit_tsv.build_vlmevalkit_tsv`), a prompt that carries the
row's question id, and ``evaluate(pred_file)`` scoring with
:func:`tspo_eval.benchmarks.score_predictions`, i.e. the LVBench rule: overall = right / all, and
a question counts in every type of its ``question_type`` list (ER, EU, KIR, TG, Rea, Sum).
Answers holding VLMEvalKit's failure message count as unanswered.

Locations: ``annotations=`` / ``video_root=`` arguments, else ``$TSPO_EVAL_LVBENCH_ANNOTATIONS`` /
``$TSPO_EVAL_LVBENCH_VIDEOS`` (``SYNTHETIC`` for the synthetic benchmark). The TSV goes to
``$LMUData/<dataset>.tsv`` as VLMEvalKit's datasets do, rewritten (atomically, usual file mode)
only when its content changes. Everything except :func:`dataset_classes` works without VLMEvalKit.
"""
from __future__ import annotations

import ast
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tspo_eval.atomic_files import atomic_output, atomic_write
from tspo_eval.benchmarks.predictions import read_table
from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.model_adapters.vlmevalkit_summary import is_failed_answer

#: VLMEvalKit dataset name -> benchmark name
DATASETS: dict[str, str] = {"LVBench": "lvbench", "TSPO_Synthetic": "synthetic"}
#: registered variants: name -> (dataset, keyword arguments), as in VLMEvalKit's video_dataset_config
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "LVBench": ("LVBench", {}),
    "LVBench_8frame": ("LVBench", {"nframe": 8}),
    "LVBench_64frame": ("LVBench", {"nframe": 64}),
    "LVBench_1fps": ("LVBench", {"fps": 1.0}),
    "TSPO_Synthetic_8frame": ("TSPO_Synthetic", {"nframe": 8}),
    "TSPO_Synthetic_64frame": ("TSPO_Synthetic", {"nframe": 64}),
}


# ---- locations and TSV ------------------------------------------------------------------------------
def locations(benchmark: str, annotations: str | os.PathLike | None = None,
              video_root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(annotation file, video root) from the arguments or ``$TSPO_EVAL_<PREFIX>_ANNOTATIONS/_VIDEOS``
    (:meth:`~tspo_eval.benchmarks.Benchmark.locations`); both must exist."""
    from tspo_eval.benchmarks import get_benchmark

    bench = get_benchmark(benchmark)
    ann, videos = bench.locations(annotations, video_root)
    if ann is None:
        raise bench.missing_location_error(f"{benchmark} (arguments annotations=/video_root=)")
    if not ann.is_file():
        raise InputError(f"{benchmark}: annotation file not found: {ann}")
    if videos is None or not videos.is_dir():
        raise InputError(f"{benchmark}: video root not found: {videos}")
    return ann, videos


def ensure_tsv(benchmark: str, annotations: str | os.PathLike, tsv_path: str | os.PathLike) -> Path:
    """Write the VLMEvalKit TSV of ``annotations`` to ``tsv_path`` unless it already holds exactly that."""
    from tspo_eval.benchmarks.vlmevalkit_tsv import build_vlmevalkit_tsv

    text = build_vlmevalkit_tsv(benchmark, annotations)
    path = Path(tsv_path)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, text)
    return path


# ---- rows -> records, prompts, scores ---------------------------------------------------------------
def _cell_list(value: Any) -> list:
    """A TSV cell holding a Python list (``"['a', 'b']"``) or an actual list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError) as exc:
        raise AnnotationError(f"not a list cell: {str(value)[:80]!r}") from exc
    if not isinstance(parsed, (list, tuple)):
        raise AnnotationError(f"not a list cell: {str(value)[:80]!r}")
    return list(parsed)


def record_from_row(benchmark: str, row: Mapping[str, Any]):
    """A :class:`QuestionRecord` from a row of our VLMEvalKit TSV (or a prediction file built on it)."""
    from tspo_eval.benchmarks import QuestionRecord

    categories: dict[str, list[str]] = {}
    if benchmark == "lvbench":
        from tspo_eval.benchmarks.lvbench import QUESTION_TYPE_CODES

        categories["question_type"] = [QUESTION_TYPE_CODES.get(t, t) for t in _cell_list(row["question_type"])]
    elif "task_type" in row:
        categories["task_type"] = [str(row["task_type"])]
    video = str(row.get("video_path", row["video"]))
    return QuestionRecord(
        benchmark=benchmark, question_id=str(row["question_id"]), video=video.removeprefix("./"),
        question=str(row["question"]), options=[str(o) for o in _cell_list(row["candidates"])],
        answer=str(row["answer"]).strip(), categories=categories,
    )


def prompt_for_row(benchmark: str, row: Mapping[str, Any]) -> str:
    """The benchmark's usual prompt (stem, lettered options, instruction) for a TSV row."""
    from tspo_eval.benchmarks import get_benchmark

    return get_benchmark(benchmark).format_prompt(record_from_row(benchmark, row))


def score_prediction_table(benchmark: str, table) -> dict[str, Any]:
    """Score a VLMEvalKit prediction table (pandas DataFrame: TSV columns + ``prediction``);
    ``per_question`` maps question id -> correct.

    Answers holding VLMEvalKit's failure message count as unanswered (wrong), never as the
    letter a regex might read in it; ``failed`` says how many there were.
    """
    from tspo_eval.benchmarks import score_predictions

    if "prediction" not in table.columns:
        raise AnnotationError("prediction file has no 'prediction' column")
    rows = table.to_dict(orient="records")
    records = [record_from_row(benchmark, row) for row in rows]
    predictions = {r.question_id: (None if _is_gap(row["prediction"]) or is_failed_answer(row["prediction"])
                                   else str(row["prediction"])) for r, row in zip(records, rows)}
    scores = score_predictions(benchmark, records, predictions).to_dict(per_question=True)
    scores["failed"] = sum(is_failed_answer(row["prediction"]) for row in rows)
    return scores


def _is_gap(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def evaluate_prediction_file(benchmark: str, eval_file: str | os.PathLike) -> dict[str, Any]:
    """Score ``eval_file``: write ``<stem>_score.xlsx`` (the table with a per-question ``score``
    0/1 column, as VLMEvalKit's own datasets do) and return the scores (run.py logs them and
    keeps them in its ``status.json``)."""
    eval_file = Path(eval_file)
    table = read_table(eval_file)
    scores = score_prediction_table(benchmark, table)
    verdicts = scores.pop("per_question")
    table["score"] = [int(verdicts[str(qid)]) for qid in table["question_id"]]
    with atomic_output(eval_file.with_name(f"{eval_file.stem}_score.xlsx")) as handle:
        table.to_excel(handle, index=False)
    return scores


# ---- the VLMEvalKit classes (built on demand) -------------------------------------------------------
_CLASSES: dict[str, type] | None = None


def dataset_classes() -> dict[str, type]:
    """``{dataset name: VideoBaseDataset subclass}``; needs VLMEvalKit."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_classes()
    return _CLASSES


def dataset_table() -> dict[str, Any]:
    """``{variant name: functools.partial(class, dataset=..., nframe=.../fps=...)}`` for ``supported_video_datasets``."""
    import functools

    classes = dataset_classes()
    return {name: functools.partial(classes[ds], dataset=ds, **kw) for name, (ds, kw) in VARIANTS.items()}


def _build_classes() -> dict[str, type]:
    from vlmeval.dataset.video_base import VideoBaseDataset

    class LVBench(LVBenchMixin, VideoBaseDataset):
        __doc__ = LVBenchMixin.__doc__

    class TSPOSynthetic(SyntheticMixin, VideoBaseDataset):
        __doc__ = SyntheticMixin.__doc__

    return {"LVBench": LVBench, "TSPO_Synthetic": TSPOSynthetic}


def lmu_data_root() -> Path:
    """VLMEvalKit's data folder (``LMUDataRoot()``: ``$LMUData``, else ``~/LMUData``)."""
    try:
        from vlmeval.smp import LMUDataRoot
    except ImportError:  # used without VLMEvalKit (tests): its documented default
        return Path(os.environ.get("LMUData") or Path.home() / "LMUData")
    return Path(LMUDataRoot())


class TspoVideoMCQMixin:
    """Multiple-choice video QA from one of this package's benchmark loaders, in the shape of a
    VLMEvalKit ``VideoBaseDataset`` (combined with it by :func:`dataset_classes`).

    ``VideoBaseDataset.__init__`` calls :meth:`prepare_dataset` and loads the TSV into ``data``;
    :meth:`build_prompt` takes a row position or a row and puts the row's ``question_id`` and
    question on the video item (our models read them; other models ignore extra keys).
    """

    TYPE = "Video-MCQ"
    MODALITY = "VIDEO"
    BENCHMARK = ""
    NAME = ""
    SYS = ""

    def __init__(self, dataset: str | None = None, nframe: int = 0, fps: float = -1,
                 annotations: str | None = None, video_root: str | None = None) -> None:
        self.annotations, self.video_root = locations(self.BENCHMARK, annotations, video_root)
        super().__init__(dataset=dataset or self.NAME, nframe=nframe, fps=fps)

    @classmethod
    def supported_datasets(cls) -> list[str]:
        return [cls.NAME]

    def prepare_dataset(self, dataset: str) -> dict[str, str]:
        tsv = ensure_tsv(self.BENCHMARK, self.annotations, lmu_data_root() / f"{dataset}.tsv")
        return {"root": str(self.video_root), "data_file": str(tsv)}

    def video_file(self, line: Mapping[str, Any]) -> str:
        return str(Path(self.data_root) / str(line["video_path"]))

    def save_video_frames(self, line: Mapping[str, Any]) -> list[str]:
        """Frames as JPEG files: ``nframe`` evenly spaced ones, or the ``fps`` grid (VLMEvalKit's rules)."""
        import numpy as np
        from PIL import Image

        from tspo_eval.video import open_video

        path = self.video_file(line)
        with open_video(path) as reader:
            n, avg_fps = reader.metadata.n_frames, reader.metadata.avg_fps
            if self.fps > 0:
                step = avg_fps / self.fps
                indices = [int(i * step) for i in range(int(n / avg_fps * self.fps))]
                paths = self.frame_paths_fps(str(line["video"]), len(indices))
            else:
                step = n / (self.nframe + 1)
                indices = [int(i * step) for i in range(1, self.nframe + 1)]
                paths = self.frame_paths(str(line["video"]))
            if not all(os.path.exists(p) for p in paths):
                frames = reader.get_frames(np.asarray(indices, dtype=np.int64))
                for frame, p in zip(frames, paths):
                    with atomic_output(p) as handle:
                        Image.fromarray(frame).save(handle, format="JPEG")
        return paths

    def build_prompt(self, line: Any, video_llm: bool) -> list[dict[str, str]]:
        if isinstance(line, int):
            line = self.data.iloc[line]
        message: list[dict[str, Any]] = [{"type": "text", "value": self.SYS}] if self.SYS else []
        if video_llm:
            message.append({"type": "video", "value": self.video_file(line), "question_id": str(line["question_id"]),
                            "question": str(line["question"])})
        else:
            message.extend({"type": "image", "value": p} for p in self.save_video_frames(line))
        message.append({"type": "text", "value": prompt_for_row(self.BENCHMARK, line)})
        return message

    @classmethod
    def evaluate(cls, eval_file: str, **judge_kwargs: Any) -> dict[str, Any]:
        return evaluate_prediction_file(cls.BENCHMARK, eval_file)


class LVBenchMixin(TspoVideoMCQMixin):
    """LVBench (VLMEvalKit has none): TSV from ``video_info.meta.jsonl``, scored by the LVBench rule."""

    BENCHMARK, NAME = "lvbench", "LVBench"


class SyntheticMixin(TspoVideoMCQMixin):
    """The synthetic smoke-test benchmark of :mod:`tspo_eval.testing.synthetic_benchmark`."""

    BENCHMARK, NAME = "synthetic", "TSPO_Synthetic"
