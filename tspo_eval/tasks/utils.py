"""lmms-eval glue for the ``tspo_*`` tasks (loaded by lmms-eval from the YAMLs next to it).

Each task reads a local annotation file and video root, named by environment variables
``TSPO_EVAL_<PREFIX>_ANNOTATIONS`` / ``TSPO_EVAL_<PREFIX>_VIDEOS`` (PREFIX: LVB, VIDEOMME,
MLVU, LVBENCH, SYNTHETIC; see docs/benchmarks.md) or the YAML's ``dataset_kwargs``
``annotations`` / ``videos``. ``tspo_synthetic`` builds its benchmark into the cache folder
when nothing is set. Scoring uses ``tspo_eval.benchmarks`` (answer rule from
``TSPO_EVAL_ANSWER_RULE``, seed ``TSPO_EVAL_ANSWER_SEED``); a missing video is logged by name
and scored as a failure, and the run goes on.

Each sample's metric dict also carries the frames its answer used (``frames``: an IndexRecord
dict, or None; ``frames_error`` when the video failed), read from the answering model's
in-process record (:data:`tspo_eval.frame_records.FRAME_BOOK`): lmms-eval scores a rank's
documents in the process that answered them, so the samples file of a run is self-contained.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lmms_eval.api.task import ConfigurableTask
from loguru import logger

from tspo_eval.benchmarks import QuestionRecord, extract_answer, get_benchmark
from tspo_eval.benchmarks.answers import parse_letter
from tspo_eval.benchmarks.scoring import report_from_outcomes
from tspo_eval.frame_records import FRAME_BOOK

METRIC = "tspo_accuracy"
MACRO_METRIC = "tspo_macro_accuracy"
_WARNED: set[str] = set()


def _synthetic_default() -> tuple[Path, Path]:
    """The generated synthetic benchmark under the cache folder (built once, under a file lock)."""
    from filelock import FileLock
    from platformdirs import user_cache_dir

    from tspo_eval.testing.synthetic_benchmark import (
        ANNOTATION_NAME,
        build_synthetic_benchmark,
    )

    root = Path(os.environ.get("TSPO_EVAL_CACHE_DIR") or user_cache_dir("tspo-eval")) / "synthetic_benchmark"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / ".build.lock")):
        if not (root / ANNOTATION_NAME).is_file():
            logger.info("tspo_synthetic: building the synthetic benchmark in {}", root)
            build_synthetic_benchmark(root)
    return root / ANNOTATION_NAME, root / "videos"


def locate(benchmark_name: str, dataset_kwargs: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """(annotation file, video root) of a benchmark from the environment / dataset_kwargs."""
    bench = get_benchmark(benchmark_name)
    annotations, videos = bench.locations(defaults=dataset_kwargs)
    if annotations is None:
        if bench.name == "synthetic":  # nothing set: the generated benchmark (videos= may still point elsewhere)
            built_annotations, built_videos = _synthetic_default()
            return built_annotations, videos or built_videos
        raise bench.missing_location_error(f"tspo_{bench.name}")
    return annotations, videos


def build_docs(benchmark_name: str, annotation_path: Path, video_root: Path) -> list[dict[str, Any]]:
    """One lmms-eval doc per question (record fields + resolved ``video_path`` + the record as JSON)."""
    bench = get_benchmark(benchmark_name)
    docs = []
    missing: list[str] = []
    for record in bench.load(annotation_path):
        path = bench.resolve_video(record, video_root)
        if not path.is_file():
            missing.append(record.video)
        docs.append({"question_id": record.question_id, "benchmark": bench.name, "video": record.video,
                     "video_path": str(path), "question": record.question, "options": list(record.options),
                     "answer": record.answer, "record": json.dumps(record.to_dict())})
    if missing:
        unique = sorted(set(missing))
        logger.warning("tspo_{}: {} of {} questions have no video under {} ({} videos, e.g. {}); they are "
                       "scored as failures", bench.name, len(missing), len(docs), video_root, len(unique),
                       ", ".join(unique[:5]))
    logger.info("tspo_{}: {} questions from {} (videos: {})", bench.name, len(docs), annotation_path, video_root)
    return docs


class TspoBenchmarkTask(ConfigurableTask):
    """A ConfigurableTask whose dataset is built from a local annotation file, not the Hub.

    The YAML's ``dataset_name`` names the benchmark (``tspo_eval.benchmarks``).
    """

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        config = {k: v for k, v in dict(config or {}).items() if k != "class"}
        self._frames_since = FRAME_BOOK.mark()  # frames recorded before this task existed belong to another run
        super().__init__(config=config, **kwargs)

    def process_results(self, doc: dict[str, Any], results: list[Any], full_docs: Any = None) -> dict[str, Any]:
        """The YAML's ``process_results`` metric dicts, plus the frames the answer used.

        The frames are looked up by (this task's name, the doc's question id): the key the
        TSPO models record them under (the request's task name and the doc's id field).
        """
        metrics = super().process_results(doc, results, full_docs)
        return add_frames(metrics, str(self.config.task), doc, self._frames_since)

    def download(self, dataset_kwargs: dict | None = None) -> None:
        import datasets

        name = self.config.dataset_name or str(self.config.task)
        annotation_path, video_root = locate(name, dataset_kwargs)
        docs = build_docs(name, annotation_path, video_root)
        split = self.config.test_split or "test"
        self.dataset = datasets.DatasetDict({split: datasets.Dataset.from_list(docs)})
        self.dataset_no_image = self.dataset


def _record(doc: dict[str, Any]) -> QuestionRecord:
    return QuestionRecord.from_dict(json.loads(doc["record"]))


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    """``[video path]``; a missing file is logged by name (the path is still returned)."""
    path = doc["video_path"]
    if not os.path.isfile(path) and path not in _WARNED:
        _WARNED.add(path)
        logger.warning("tspo_{}: video missing for question {}: {}", doc["benchmark"], doc["question_id"], path)
    return [path]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The benchmark's usual prompt; ``pre_prompt`` / ``post_prompt`` override its defaults."""
    kwargs = lmms_eval_specific_kwargs or {}
    bench = get_benchmark(doc["benchmark"])
    return bench.format_prompt(_record(doc), kwargs.get("pre_prompt"), kwargs.get("post_prompt"))


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, dict[str, Any]]:
    """Per-sample metric dict ``{question_id, pred, answer, correct, score, video, video_missing,
    unparsed, benchmark, <breakdown fields>}`` under ``tspo_accuracy`` (and, for MLVU,
    ``tspo_macro_accuracy``)."""
    record = _record(doc)
    bench = get_benchmark(record.benchmark)
    text = results[0] if results else ""
    while isinstance(text, (list, tuple)):
        text = text[0] if text else ""
    n_options = len(record.options)
    video_missing = not os.path.isfile(doc["video_path"])
    pred = None if video_missing else parse_letter(text, n_options)
    unparsed = not video_missing and pred is None
    if unparsed and os.environ.get("TSPO_EVAL_ANSWER_RULE", "first-letter") == "random":
        seed = os.environ.get("TSPO_EVAL_ANSWER_SEED", "0")
        pred = extract_answer("", n_options, rule="random", seed=f"{seed}:{record.question_id}")
    if video_missing:
        logger.warning("tspo_{}: question {} scored as a failure: video missing ({})", bench.name,
                       record.question_id, doc["video_path"])
    correct = pred == record.answer
    metric: dict[str, Any] = {
        "question_id": record.question_id, "pred": pred, "answer": record.answer, "correct": correct,
        "score": 100.0 if correct else 0.0, "video": record.video, "video_missing": video_missing,
        "unparsed": unparsed, "benchmark": bench.name,
    }
    for name in bench.breakdowns:
        values = record.categories.get(name, [])
        metric[name] = list(values) if bench.name == "lvbench" else (values[0] if values else None)
    out = {METRIC: metric}
    if bench.macro_breakdown:
        out[MACRO_METRIC] = metric
    return out


def add_frames(metrics: dict[str, Any], task: str, doc: dict[str, Any], since: int = 0) -> dict[str, Any]:
    """``metrics`` with ``frames`` (and ``frames_error``) added to each per-sample metric dict."""
    entry = FRAME_BOOK.entry(task, str(doc["question_id"]), since)
    for value in {id(v): v for v in metrics.values() if isinstance(v, dict)}.values():
        value.update(entry)
    return metrics


def _report(results: list[dict[str, Any]]):
    rule = os.environ.get("TSPO_EVAL_ANSWER_RULE", "first-letter")
    report = report_from_outcomes(results[0]["benchmark"], results, rule=rule)
    missing = [r["question_id"] for r in results if r.get("video_missing")]
    logger.info("tspo_{} scores\n{}", report.benchmark, report.to_table())
    if missing:
        logger.warning("tspo_{}: {} question(s) had no video and count as wrong: {}", report.benchmark,
                       len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    return report


def aggregate_accuracy(results: list[dict[str, Any]]) -> float:
    """Overall (pooled) accuracy in percent; logs the breakdown table."""
    return _report(results).overall if results else 0.0


def aggregate_macro_accuracy(results: list[dict[str, Any]]) -> float:
    """Mean of the per-task-type accuracies in percent (MLVU, as lmms-eval's mlvu_dev reports)."""
    if not results:
        return 0.0
    report = report_from_outcomes(results[0]["benchmark"], results)
    return report.macro if report.macro is not None else report.overall
