"""Read lmms-eval output folders into :class:`~tspo_eval.leaderboard.run.Run` objects.

Layout written by lmms-eval 0.7.x (``EvaluationTracker``)::

    OUT/<sanitized model name>/<date id>_results.json          # "results", "configs", "config": {"model", "model_args", ...}
    OUT/<sanitized model name>/<date id>_samples_<task>.jsonl  # with --log_samples: one object per doc

A samples line holds ``doc_id``, ``target``, ``filtered_resps``, ``doc_hash``, ``input`` and one
key per metric.  Our ``tspo_*`` tasks' metric value is a dict ``{"question_id", "pred", "answer",
"correct", "video", <breakdown fields>, "frames"}`` (``frames``: the IndexRecord of the frames the
answer used, see :mod:`tspo_eval.frame_records`); the built-in long-video tasks' dicts
(``lvb_acc``, ``videomme_perception_score``, ``mlvu_percetion_score``) are read too (their own key
names).  Runs made before the frames moved into the samples have a side log next to the results,
``<date id>_tspo_frames_<task>.jsonl`` or ``tspo_frames_<task>.jsonl``; it is found too.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.errors import AnnotationError
from tspo_eval.frame_records import FRAMES_KEY, SAMPLES_NAME_RE
from tspo_eval.leaderboard.run import Run, benchmark_from_name, label_from_model_args
from tspo_eval.lmms_samples import iter_samples, metric_dicts, metric_question_id

_SAMPLES_RE = SAMPLES_NAME_RE
_RESULTS_SUFFIX = "_results.json"
_PRED_KEYS = ("pred", "parsed_pred", "pred_answer")
#: fields of a metric dict that are not breakdowns
_NOT_BREAKDOWN = {"question_id", "id", "uid", "qid", "pred", "parsed_pred", "pred_answer", "answer",
                  "correct", "score", "video", "videoID", "video_id", "unparsed", "video_missing", "response",
                  "benchmark", "frames", "frames_error"}


def is_lmms_file(path: Path) -> bool:
    return path.name.endswith(_RESULTS_SUFFIX) or bool(_SAMPLES_RE.match(path.name))


def read_output_dir(root: Path) -> list[Run]:
    """Every (results file, task) run under ``root`` (an ``--output_path`` or one model folder)."""
    runs: list[Run] = []
    results_files = sorted(root.rglob(f"*{_RESULTS_SUFFIX}"))
    covered: set[Path] = set()
    for results in results_files:
        runs.extend(read_file(results))
        covered.update(_samples_of(results))
    for samples in sorted(p for p in root.rglob("*_samples_*.jsonl") if p not in covered):
        if _SAMPLES_RE.match(samples.name):
            logger.warning("{}: samples without a results file; model and frame source unknown", samples)
            runs.extend(read_file(samples))
    return runs


def _samples_of(results: Path) -> list[Path]:
    date = results.name[: -len(_RESULTS_SUFFIX)]
    return sorted(results.parent.glob(f"{glob_escape(date)}_samples_*.jsonl"))


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def read_file(path: Path) -> list[Run]:
    """Runs of one results file (each task with a samples file) or of one samples file."""
    if path.name.endswith(_RESULTS_SUFFIX):
        results = _read_json(path)
        samples = _samples_of(path)
        tasks = list((results.get("results") or {}).keys())
        if not samples:
            logger.warning("{}: no samples files next to it (run lmms-eval with --log_samples); "
                           "tasks {} skipped", path, tasks)
        return [_run_from_samples(p, results, path) for p in samples]
    return [_run_from_samples(path, _sibling_results(path), None)]


def _sibling_results(samples: Path) -> dict[str, Any]:
    match = _SAMPLES_RE.match(samples.name)
    results = samples.with_name(f"{match.group('date')}{_RESULTS_SUFFIX}") if match else None
    return _read_json(results) if results is not None and results.is_file() else {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{path}: unreadable lmms-eval results file ({exc})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object")
    return data


def _task_benchmark(task: str, results: dict[str, Any]) -> str | None:
    config = (results.get("configs") or {}).get(task)
    config = config if isinstance(config, dict) else {}
    meta = config.get("metadata")
    if isinstance(meta, dict) and meta.get("benchmark"):
        return str(meta["benchmark"])
    return benchmark_from_name(task) or benchmark_from_name(str(config.get("dataset_name") or ""))


def _run_from_samples(samples: Path, results: dict[str, Any], results_path: Path | None) -> Run:
    match = _SAMPLES_RE.match(samples.name)
    task = match.group("task") if match else samples.stem
    data = read_samples(samples)
    benchmark = data.benchmark or _task_benchmark(task, results)
    if benchmark is None:
        raise AnnotationError(f"{samples}: cannot tell the benchmark of task {task!r}")
    config = results.get("config") or {}
    model, source, frames = label_from_model_args(
        config.get("model_args"), results.get("model_name") or config.get("model") or samples.parent.name,
        lmms_model=config.get("model"))
    if not results:
        source = "unknown"
    date = match.group("date") if match else ""
    frames_file = samples if data.frames else next(
        (f for f in (samples.parent / f"{date}_tspo_frames_{task}.jsonl", samples.parent / f"tspo_frames_{task}.jsonl")
         if f.is_file()), None)  # side logs of runs made before the frames moved into the samples
    details = {"model_args": config.get("model_args"), "lmms_model": config.get("model"),
               "results": str(results_path) if results_path else None, "samples": str(samples),
               "frames_index": str(frames_file) if frames_file else None, "frames_in_samples": data.frames,
               "date": results.get("date"), "unparsed": data.unparsed, "video_missing": data.video_missing}
    return Run(name="", benchmark=benchmark, model=model, frame_source=source, num_frames=frames,
               outcomes=data.outcomes, categories=data.categories, host="lmms-eval", path=str(samples), task=task,
               details=details, duplicates=data.duplicates)


@dataclass
class SamplesData:
    """What a samples file says per question, plus counts."""

    outcomes: dict[str, bool] = field(default_factory=dict)
    categories: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    duplicates: int = 0
    unparsed: int = 0            # answers with no option letter (our tasks' "unparsed" flag)
    video_missing: int = 0       # questions scored wrong because the video was missing
    frames: int = 0              # answers whose frames the samples record (our models on tspo_* tasks)
    benchmark: str | None = None  # the metric dict's "benchmark" field (our tasks), when present


def read_samples(path: Path) -> SamplesData:
    """Per-question outcomes and categories of an lmms-eval samples file (first answer of a duplicated id)."""
    data = SamplesData()
    benchmarks: set[str] = set()
    for lineno, sample in iter_samples(path):
        metric = metric_dict(sample)
        if metric is None:
            raise AnnotationError(f"{path}: line {lineno}: no per-question metric dict with a question id "
                                  f"(keys: {sorted(sample)[:12]})")
        qid = metric_question_id(metric)
        if qid in data.outcomes:
            data.duplicates += 1
            continue
        data.outcomes[qid] = _correct(metric)
        data.categories[qid] = _categories(metric)
        data.unparsed += bool(metric.get("unparsed"))
        data.video_missing += bool(metric.get("video_missing"))
        data.frames += isinstance(metric.get(FRAMES_KEY), dict)
        if isinstance(metric.get("benchmark"), str):
            benchmarks.add(metric["benchmark"])
    if data.duplicates:
        logger.warning("{}: {} duplicate question ids (first answer kept)", path, data.duplicates)
    if not data.outcomes:
        raise AnnotationError(f"{path}: empty samples file")
    if len(benchmarks) > 1:
        raise AnnotationError(f"{path}: samples of several benchmarks ({', '.join(sorted(benchmarks))})")
    data.benchmark = next(iter(benchmarks), None)
    return data


def metric_dict(sample: dict[str, Any]) -> dict[str, Any] | None:
    """The per-question metric dict of one samples line (ours first, then one with a verdict), or None."""
    candidates = [(k, v) for k, v in metric_dicts(sample) if metric_question_id(v) is not None]
    if not candidates:
        return None
    candidates.sort(key=lambda kv: (not kv[0].startswith("tspo"), "correct" not in kv[1]))
    return candidates[0][1]


def _correct(metric: dict[str, Any]) -> bool:
    if "correct" in metric:
        return bool(metric["correct"])
    if isinstance(metric.get("score"), (int, float)):
        return float(metric["score"]) > 0
    pred = next((metric[k] for k in _PRED_KEYS if k in metric), None)
    answer = metric.get("answer")
    return isinstance(pred, str) and isinstance(answer, str) and pred.strip().upper() == answer.strip().upper() != ""


def _categories(metric: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in metric.items():
        if key in _NOT_BREAKDOWN or value is None or isinstance(value, (dict, bool)):
            continue
        if isinstance(value, list):
            values = [str(v) for v in value if isinstance(v, (str, int, float)) and not isinstance(v, bool)]
        elif isinstance(value, (str, int, float)):
            values = [str(value)]
        else:
            continue
        if values:
            out[key] = values
    return out
