"""One VLMEvalKit inference job (one model x one dataset) as our models see it.

VLMEvalKit gives a model only the dataset's *class* name (``generate(message, dataset="LVBench")``)
and, when the dataset builds the prompt, no row. :func:`job_runner` wraps VLMEvalKit's
``infer_data_job_video`` (the launcher puts the wrapper where ``run.py`` imports it from) so that
while a job runs, :func:`current_job` gives the models:

* the name the run uses (``LVBench_64frame``: the ``--data`` / config name in the result file
  names), for the frame files of the run;
* the dataset object: its ``nframe`` (does VLMEvalKit allow a custom prompt?) and its table, to
  match a message to its row (:meth:`VlmevalJob.query_for`);
* the run folder, where the side log goes.

When the job ends the wrapper closes the frame logs, merges the per-rank files (rank 0), and
summarises where the answers' frames came from (:class:`FrameSourceSummary`, one log line);
the reports of finished jobs are kept in :data:`FINISHED` for the launcher's exit status.
"""
from __future__ import annotations

import contextlib
import functools
import glob
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.model_adapters.vlmevalkit_messages import (
    RowFinder,
    VideoQuery,
    fallback_query,
    message_text,
    message_videos,
    normalize_message,
    query_from_row_item,
    row_question_id,
)
from tspo_eval.model_adapters.vlmevalkit_summary import (
    FrameSourceSummary,
    generator_index_name,
    side_log_name,
    summarize,
)

RANK_PART = ".rank{rank}"


@dataclass
class JobReport:
    """What a finished job left: its frame summary and the problems that make the run fail."""

    model: str
    dataset: str
    summary: FrameSourceSummary | None
    frame_file: Path | None
    problems: list[str] = field(default_factory=list)


#: reports of the jobs finished in this process (rank 0 only), oldest first
FINISHED: list[JobReport] = []


@dataclass
class VlmevalJob:
    """The running job: names, dataset object, folders, and the frame logs opened for it."""

    model_name: str
    dataset_name: str          # the name VLMEvalKit runs under (``LVBench_64frame``)
    dataset: Any               # the VLMEvalKit dataset object (``data``, ``nframe``, ``build_prompt``)
    run_dir: Path              # folder of the prediction file
    work_dir: Path             # the run's --work-dir (generator indices go here)
    rank: int = 0
    world_size: int = 1
    logs: dict[str, Any] = field(default_factory=dict)   # template -> SelectionLog
    _rows: RowFinder | None = None

    @property
    def nframe(self) -> int:
        return int(getattr(self.dataset, "nframe", 0) or 0)

    @property
    def task(self) -> str:
        """The task name the frame source gets (benchmark of the records, ``auto`` strategy,
        ``{task}`` of a log template): the run's name when it names the dataset's benchmark (or the
        dataset names none), else the dataset's own name (a config entry
        ``"LVB_1fps": {"class": "LVBench", "dataset": "LVBench", ...}`` is LVBench, whatever its key suggests)."""
        from tspo_eval.benchmarks import find_benchmark

        own_name = getattr(self.dataset, "dataset_name", None)
        own = find_benchmark(str(own_name)) if own_name else None
        named = find_benchmark(self.dataset_name)
        if named is not None and (own is None or own is named):
            return self.dataset_name
        return str(own_name) if own is not None else self.dataset_name

    def default_template(self, generator: bool) -> str:
        """Per-rank file template of this job's frame records (merged into the final name by rank 0)."""
        if generator:
            name = generator_index_name(self.model_name, self.dataset_name)
            folder = self.work_dir
        else:
            name = side_log_name(self.model_name, self.dataset_name)
            folder = self.run_dir
        return str(folder / name.replace(".jsonl", f"{RANK_PART}.jsonl"))

    def log_for(self, template: str) -> Any:
        """The job's SelectionLog for ``template`` (``{task}`` = this job's dataset name)."""
        from tspo_eval.frame_source import SelectionLog

        if self.world_size > 1 and "{rank}" not in template and template.endswith(".jsonl"):
            template = template[: -len(".jsonl")] + f"{RANK_PART}.jsonl"
        if template not in self.logs:
            self.logs[template] = SelectionLog(template, rank=self.rank)
        return self.logs[template]

    # -- message -> row -------------------------------------------------------------------
    def query_for(self, message: list[dict[str, Any]]) -> VideoQuery | None:
        """The query of a dataset-built message, from its row in the running dataset (None: no match)."""
        data = getattr(self.dataset, "data", None)
        if data is None or "video" not in data or "question" not in data:
            return None
        if self._rows is None:
            self._rows = RowFinder(data)
        position = self._rows.find(message)
        if position is None:
            return None
        row = data.iloc[position]
        qid = row_question_id(row, getattr(self.dataset, "dataset_name", self.dataset_name))
        if qid is None:
            return None
        videos = message_videos(message)
        video = str(videos[0]["value"]) if videos else self._video_of(position)
        if video is None:
            return None
        return VideoQuery(prompt=message_text(message), video=video, question=str(row["question"]), question_id=qid,
                          identified=True)

    def _video_of(self, position: int) -> str | None:
        """The video path of a row, as the dataset itself gives it to video models."""
        try:
            videos = message_videos(normalize_message(self.dataset.build_prompt(position, video_llm=True)))
        except Exception as exc:  # noqa: BLE001 - a dataset's own prompt code: any failure means "unknown"
            logger.warning("[{}] row {}: the dataset gave no video path ({})", self.dataset_name, position, exc)
            return None
        return str(videos[0]["value"]) if len(videos) == 1 else None

    # -- end of the job -------------------------------------------------------------------
    def finish(self, model: Any, result_file: str | None) -> JobReport | None:
        """Close this rank's logs; rank 0 merges the rank files and summarises (None elsewhere)."""
        templates = list(self.logs)
        for log in self.logs.values():
            log.close()
        self.logs.clear()
        if self.rank != 0:
            return None
        records: list[Any] = []
        final: Path | None = None
        for template in templates:
            final, this_run = merge_rank_files(template, self.task)
            records += this_run
        frame_source = getattr(model, "frame_source", None)
        if frame_source is None:   # not one of our models
            return None
        predictions = read_predictions(result_file)
        report = JobReport(self.model_name, self.dataset_name, None, final)
        if predictions is None and not records:
            return report
        requested = requested_of(frame_source)
        summary = summarize(requested, records, predictions, answers=len(predictions) if predictions else None)
        report.summary = summary
        (logger.info if summary.clean and not summary.unidentified else logger.warning)(
            "frame sources: {}", summary.line(self.model_name, self.dataset_name))
        report.problems = job_problems(summary, getattr(model, "IS_GENERATOR", False),
                                       frame_source.options.frame_index)
        return report


def requested_of(frame_source: Any) -> str:
    """The run's frame source label: tspo, clip (a CLIP scorer), index or uniform."""
    mode = frame_source.mode
    if mode == "tspo" and frame_source.options.selector.scorer == "clip":
        return "clip"
    return mode


def job_problems(summary: FrameSourceSummary, generator: bool, frame_index: str | None) -> list[str]:
    """Why a finished job makes the launcher exit non-zero (frameless answers are counted by
    VLMEvalKit's own status report): an index run that found none of its questions in the
    index, and a frame-index generator that wrote made-up question ids."""
    problems = []
    answered = summary.answers - summary.frameless
    if summary.requested == "index" and answered > 0 and summary.logged and summary.from_requested == 0:
        problems.append(f"none of the {answered} answers took its frames from the index {frame_index} "
                        f"(question ids do not match; {summary.label()})")
    if generator and summary.unidentified:
        problems.append(f"{summary.unidentified} index records have made-up question ids (no dataset row matched)")
    return problems


def merge_rank_files(template: str, task: str) -> tuple[Path | None, list[Any]]:
    """Merge the ``.rank<r>`` files of ``template`` into the file without it; this run's records win
    over those already in it.  Returns (merged file, this run's records)."""
    from tspo_eval.frame_index_cache.index_files import read_index
    from tspo_eval.frame_index_cache.index_store import sort_records, write_index

    name = template.replace("{task}", task.replace(os.sep, "_"))
    if RANK_PART not in name:
        path = Path(name.replace("{rank}", "0"))
        return (path, list(read_index(path).values())) if path.is_file() else (path, [])
    final = Path(name.replace(RANK_PART, ""))
    parts = sorted(glob.glob(glob.escape(name.split(RANK_PART)[0]) + ".rank*" + name.split(RANK_PART)[1]))
    this_run: dict[str, Any] = {}
    for part in parts:
        for qid, record in read_index(part).items():
            this_run.setdefault(qid, record)
    if not parts:
        return final, []
    merged = dict(read_index(final)) if final.is_file() else {}
    merged.update(this_run)
    write_index(final, sort_records(merged.values()))
    for part in parts:
        Path(part).unlink(missing_ok=True)
    logger.info("frame records of {} rank file(s) merged into {} ({} questions)", len(parts), final, len(merged))
    return final, list(this_run.values())


def read_predictions(result_file: str | None) -> list[Any] | None:
    """The ``prediction`` column of a VLMEvalKit result file (None when absent/unreadable)."""
    if not result_file or not Path(result_file).is_file():
        return None
    import pandas as pd

    path = Path(result_file)
    try:
        if path.suffix.lower() == ".json":
            table = pd.read_json(path)
        else:
            from tspo_eval.benchmarks.predictions import read_table

            table = read_table(path)
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for unreadable files
        logger.warning("cannot read predictions {}: {}", path, exc)
        return None
    return list(table["prediction"]) if "prediction" in table else None


# ---- the running job ------------------------------------------------------------------------
_CURRENT: list[VlmevalJob] = []


def current_job() -> VlmevalJob | None:
    """The job VLMEvalKit is running in this process, or None outside the launcher."""
    return _CURRENT[-1] if _CURRENT else None


@contextlib.contextmanager
def job_scope(job: VlmevalJob) -> Iterator[VlmevalJob]:
    _CURRENT.append(job)
    try:
        yield job
    finally:
        _CURRENT.remove(job)


def run_name(model_name: str, dataset: Any, result_file: str | None) -> str:
    """The dataset name of the run: from the result file ``<model>_<name>.<ext>``, else the dataset's own."""
    if result_file:
        stem = Path(result_file).stem
        if stem.startswith(f"{model_name}_"):
            return stem[len(model_name) + 1:]
    return str(getattr(dataset, "dataset_name", "unknown"))


def job_runner(infer_job: Callable[..., Any], work_dir: str | os.PathLike) -> Callable[..., Any]:
    """``infer_job`` (VLMEvalKit's ``infer_data_job_video``, same signature) run inside a job scope."""
    signature = inspect.signature(infer_job)

    @functools.wraps(infer_job)
    def run_job(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        model_name = bound.arguments["model_name"]
        dataset = bound.arguments["dataset"]
        result_file = bound.arguments.get("result_file")
        job = VlmevalJob(model_name=str(model_name), dataset_name=run_name(str(model_name), dataset, result_file),
                         dataset=dataset, run_dir=Path(bound.arguments["work_dir"]), work_dir=Path(work_dir),
                         rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")))
        model = None
        try:
            with job_scope(job):
                model = infer_job(*args, **kwargs)
        finally:
            if model is None:   # the job raised: still close (and merge) what was logged
                job.finish(None, None)
            _end_lookahead(model if model is not None else bound.arguments.get("model"))
        if result_file is None:
            from vlmeval.smp import get_pred_file_path

            result_file = get_pred_file_path(str(job.run_dir), job.model_name, job.dataset_name, use_env_format=True)
        report = job.finish(model, result_file)
        if report is not None:
            FINISHED.append(report)
        return model

    return run_job


def _end_lookahead(model: Any) -> None:
    """Stop a TSPO model's lookahead thread when its job ends (it plans per job)."""
    frame_source = getattr(model, "frame_source", None)
    stop = getattr(frame_source, "stop_lookahead", None)
    if callable(stop):
        stop()


def query_for_message(message: list[dict[str, Any]], dataset: str | None) -> VideoQuery:
    """Video, selector question and question id of a message, from its dataset row whenever possible."""
    query = query_from_row_item(message, dataset)
    if query is not None:
        return query
    job = current_job()
    if job is not None:
        query = job.query_for(message)
        if query is not None:
            return query
    query = fallback_query(message, job.dataset_name if job is not None else dataset)
    logger.warning("[{}] no dataset row matches the message for {}: question id {} is made up",
                   job.dataset_name if job is not None else dataset, Path(query.video).name, query.question_id)
    return query
