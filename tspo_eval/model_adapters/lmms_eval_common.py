"""Plumbing shared by the lmms-eval TSPO models (``qwen2_5_vl_tspo``, ``llava_vid_tspo``).

* :func:`~tspo_eval.frame_source.pop_host_options` takes the TSPO ``model_args`` out of the constructor kwargs (built-in
  lmms-eval constructors ``assert kwargs == {}``) and :func:`reject_unknown` names leftovers;
* :func:`doc_question` / :func:`doc_video` read the question, its id and the video path from the
  doc of the built-in tasks (LongVideoBench, Video-MME, MLVU, LVBench) and the ``tspo_*`` tasks;
* :class:`TspoLmms` is the base model: rank/device set-up, one :class:`FrameSource` per rank, the
  ``generate_until`` loop, failure counting, and where each answer's frames go: into this
  process's :data:`~tspo_eval.frame_records.FRAME_BOOK` (the ``tspo_*`` tasks copy them into
  lmms-eval's samples file) and, for built-in tasks or on request, a side log
  (:mod:`tspo_eval.model_adapters.lmms_eval_side_log`).

Only lmms-eval's model interface is used (no call-stack reading): the ``lmms`` base class, the
``generate_until`` request layout ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``,
``task_dict`` and ``cache_hook``; ``tests/test_host_contracts.py`` pins them against the
installed lmms-eval.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger

from tspo_eval.benchmarks.registry import find_benchmark
from tspo_eval.errors import InputError, TspoEvalError, VideoError
from tspo_eval.frame_records import FRAME_BOOK
from tspo_eval.frame_source import HOST_ARGUMENTS, FrameSource
from tspo_eval.model_adapters.lmms_eval_side_log import (
    SideLog,
    explicit_selection_log,
    frames_go_to_samples,
    log_stamp,
    merge_rank_logs,
    side_log_template,
)

#: further model_args handled by the shared plumbing
COMMON_MODEL_ARGS = ("selection_log",)

#: question-id fields tried after the benchmark's own (Benchmark.id_fields) for other tasks' docs
_GENERIC_ID_FIELDS = ("question_id", "qid", "id", "uid")


def reject_unknown(model: str, leftover: dict[str, Any], known: Sequence[str]) -> None:
    """:class:`InputError` naming every unknown model_arg and the accepted ones."""
    if leftover:
        names = ", ".join(sorted(leftover))
        accepted = ", ".join(sorted({*known, *HOST_ARGUMENTS, *COMMON_MODEL_ARGS}))
        raise InputError(f"{model}: unknown model_args {names}; accepted: {accepted}")


def init_params(cls: type) -> list[str]:
    """Named parameters of ``cls.__init__`` (the model_args a model accepts besides the TSPO ones)."""
    return [n for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def doc_question(task: str, doc: dict[str, Any], doc_id: int, context: str) -> tuple[str, str]:
    """(question text for the selector, question id) of one doc.

    The text is the doc's ``question`` field (the selector cuts the options off itself), else the
    prompt; the id comes from the benchmark's id field (``question_id`` for the ``tspo_*`` tasks),
    else ``<task>:<doc_id>``.
    """
    question = doc.get("question") if isinstance(doc, dict) else None
    if not isinstance(question, str) or not question.strip():
        question = context
    bench = find_benchmark(task)
    fields = (bench.id_fields if bench is not None else ()) + _GENERIC_ID_FIELDS
    if frames_go_to_samples(task):  # our tasks' docs: the id their process_results looks the frames up by
        fields = ("question_id", *fields)
    for name in fields:
        value = doc.get(name) if isinstance(doc, dict) else None
        if value is not None and str(value) != "":
            return question, str(value)
    return question, f"{task}:{doc_id}"


def doc_video(task: str, doc_id: int, doc: dict[str, Any], doc_to_visual: Any) -> str:
    """The one video file of a doc, through the task's ``doc_to_visual``.

    Some built-in tasks ``sys.exit`` or assert on a missing video: that becomes a
    :class:`VideoError` naming the file so the sample is scored as a failure and the run goes on.
    """
    try:
        visuals = doc_to_visual(doc)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the task's own error for a missing video
        raise VideoError(f"{task} doc {doc_id}", f"doc_to_visual failed: {exc}") from None
    if isinstance(visuals, (str, os.PathLike)):
        visuals = [visuals]
    paths = [v for v in (visuals or []) if isinstance(v, (str, os.PathLike))]
    if len(paths) != 1:
        raise VideoError(f"{task} doc {doc_id}", f"expected one video file from doc_to_visual, got {visuals!r}"[:300])
    path = os.fspath(paths[0])
    if not os.path.isfile(path):
        raise VideoError(path, "no such video file")
    return path


@dataclass
class FailureLog:
    """Samples that got no answer because their video (or its frames) could not be used."""

    failed: dict[tuple[str, str], str] = field(default_factory=dict)  # (task, question id) -> error

    def add(self, task: str, qid: str, error: BaseException) -> None:
        self.failed[(task, qid)] = str(error)
        logger.error("[{}] {}: no frames, answer left empty (scored wrong): {}", task, qid, error)

    @property
    def items(self) -> list[tuple[str, str, str]]:
        """(task, question id, error) of each failed sample (padding duplicates counted once)."""
        return [(task, qid, error) for (task, qid), error in self.failed.items()]

    def summary(self, total: int, all_failed: int | None = None, all_total: int | None = None) -> None:
        """Log this rank's failures (by name) and, with several ranks, the run's totals."""
        if self.items:
            names = "; ".join(f"{t}/{q}" for t, q, _ in self.items[:20]) + (" ..." if len(self.items) > 20 else "")
            logger.warning("{} of {} samples failed (missing/broken videos): {}", len(self.items), total, names)
        else:
            logger.info("all {} samples got frames (0 failures)", total)
        if all_total is not None:
            logger.info("all ranks: {} of {} samples failed (missing/broken videos)", all_failed, all_total)


def cut_at_stop(text: str, until: Any) -> str:
    """``text`` up to the first of the task's ``until`` strings (``"\\n\\n"`` ignored, as lmms-eval's Qwen does)."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in stops:
        if stop and stop != "\n\n":
            text = text.split(stop)[0]
    return text


class TspoLmms(lmms):
    """Base of the TSPO lmms-eval models: frames from a :class:`FrameSource`, answers from ``_answer_batch``.

    Subclasses load their VLM, then call :meth:`_setup_frames`, and implement
    ``_answer_batch([(context, frames, result, gen_kwargs), ...]) -> [answer, ...]`` (or the
    one-at-a-time ``_answer(context, frames, result, gen_kwargs) -> str``).
    """

    is_simple = True
    model_name = "tspo"

    def _setup_runtime(self, device: str | None, batch_size: int | str = 1) -> None:
        """Rank, world size and this rank's device (``cuda:<local rank>`` under accelerate)."""
        import torch
        from accelerate import Accelerator

        from tspo_eval.agent.devices import resolve_device
        from tspo_eval.distributed import DistContext

        self.accelerator = Accelerator()
        launched = DistContext.from_env()  # torchrun on CPU: accelerate reports a single process
        if self.accelerator.num_processes > 1:
            self._device = self.accelerator.device
            self._rank, self._world_size = self.accelerator.process_index, self.accelerator.num_processes
        elif launched.is_distributed:
            self._device = resolve_device(device if device and device != "cuda" else launched.default_device())
            self._rank, self._world_size = launched.rank, launched.world_size
        else:
            self._device = resolve_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self._rank, self._world_size = 0, 1
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise InputError(f"{self.model_name}: batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size_per_gpu = int(batch_size)

    def _setup_frames(self, tspo_options: dict[str, Any], selection_log: str | None) -> None:
        """One FrameSource per rank on this rank's device (the feature cache folder is shared)."""
        options = dict(tspo_options)
        options.setdefault("tspo_device", str(self._device))
        frame_selection = options.pop("frame_selection", "tspo")
        self.frame_source = FrameSource.from_options(frame_selection, **options)
        self._selection_log_arg = explicit_selection_log(selection_log)
        self.side_log: SideLog | None = None
        self.failures = FailureLog()
        self._seen: set[tuple[str, int]] = set()  # (task, doc_id): lmms-eval pads ranks with duplicates
        logger.info("{}: frame_selection={}, num_frames={}, strategy={}", self.model_name, self.frame_source.mode,
                    self.frame_source.options.num_frames, self.frame_source.options.selector.strategy)

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    @property
    def device(self):
        return self._device

    @property
    def model(self):
        return self._model

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def eot_token_id(self) -> int:
        return self._tokenizer.eos_token_id

    # -- lmms API -------------------------------------------------------------------------
    def loglikelihood(self, requests):
        raise NotImplementedError(f"{self.model_name}: loglikelihood is not supported (generation tasks only)")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError(f"{self.model_name}: multi-round generation is not supported")

    def generate_until(self, requests) -> list[str]:
        """One answer per request: select frames, decode them, generate; failed videos answer ``""``.

        ``request.args`` is lmms-eval's ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)``.
        Requests are taken ``batch_size`` at a time: their frames are selected and decoded, then
        :meth:`_answer_batch` answers them together. With ``frame_selection=tspo`` and
        ``lookahead=N`` (default 2) the candidates of the next N videos are decoded and encoded
        into the feature cache in a background thread meanwhile (:mod:`tspo_eval.lookahead`); the
        thread ends with this call, also when it raises.
        """
        from tqdm import tqdm

        self._open_side_log()
        answers: list[str] = []
        desc = f"Model Responding ({self.frame_source.mode} frames)"
        window = self.batch_size_per_gpu
        self._videos = {}
        upcoming = self._plan_videos(requests)
        with self.frame_source.looking_ahead(upcoming), \
                tqdm(total=len(requests), disable=self.rank != 0, desc=desc) as progress:
            for start in range(0, len(requests), window):
                chunk = requests[start:start + window]
                answers.extend(self._answer_requests(chunk))
                for request, answer in zip(chunk, answers[start:]):
                    self._seen.add((request.args[4], request.args[3]))
                    context, gen_kwargs = request.args[:2]
                    self.cache_hook.add_partial("generate_until", (context, gen_kwargs), answer)
                progress.update(len(chunk))
        self._videos = {}
        self._finish_side_log()
        totals: tuple[int, ...] = ()
        if self.world_size > 1:
            totals = self._sum_over_ranks(len(self.failures.failed), len(self._seen))
        self.failures.summary(len(self._seen), *(totals if self.rank == 0 else ()))
        return answers

    def _sum_over_ranks(self, *values: int) -> tuple[int, ...]:
        """Element-wise sums over all ranks (the values themselves without a process group)."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return values
        device = self._device if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor(values, dtype=torch.int64, device=device)
        dist.all_reduce(tensor)
        return tuple(int(v) for v in tensor.tolist())

    def _plan_videos(self, requests: Sequence[Any]) -> list[str]:
        """The videos of ``requests`` in order of use, for the frame source's lookahead (none when
        it is off: nothing is looked up early then)."""
        if not self.frame_source.lookahead_wanted:
            return []
        videos = []
        for request in requests:
            try:
                videos.append(self._video_of(request))
            except TspoEvalError:
                continue  # reported at the request's own turn
        return videos

    def _video_of(self, request: Any) -> str:
        """The video file of one Instance (:func:`doc_video`), looked up once per ``generate_until``;
        raises the doc's :class:`VideoError` (again) at every use."""
        _, _, doc_to_visual, doc_id, task, split = request.args[:6]
        videos = getattr(self, "_videos", None)
        if videos is None:
            videos = self._videos = {}
        key = (task, split, doc_id)
        if key not in videos:
            try:
                videos[key] = doc_video(task, doc_id, self.task_dict[task][split][doc_id], doc_to_visual)
            except TspoEvalError as exc:
                videos[key] = exc
        found = videos[key]
        if isinstance(found, TspoEvalError):
            raise found
        return found

    def _answer_requests(self, chunk: Sequence[Any]) -> list[str]:
        """Answers to a few lmms-eval ``generate_until`` Instances (``""`` where a video failed)."""
        prepared = [self._prepare_request(request) for request in chunk]
        ready = [item for item in prepared if item is not None]
        texts = iter(self._answer_batch(ready) if ready else [])
        answers = []
        for item in prepared:
            if item is None:
                answers.append("")
                continue
            answer = next(texts)
            logger.debug("{}: answer {!r}", item[2].video, answer)
            answers.append(cut_at_stop(answer, item[3].get("until")))
        return answers

    def _prepare_request(self, request: Any) -> tuple[str, Any, Any, dict] | None:
        """``(context, frames uint8 [K,H,W,3], SelectionResult, gen_kwargs)`` of one Instance, or None
        when its video failed (the failure is recorded)."""
        context, gen_kwargs, _, doc_id, task, split = request.args[:6]
        doc = self.task_dict[task][split][doc_id]
        question, qid = doc_question(task, doc, doc_id, context)
        try:
            video = self._video_of(request)
            frames, result = self.frame_source.frames_for(video, question, qid, task)
        except TspoEvalError as exc:
            self._record_failure(task, qid, exc)
            return None
        self._record_frames(task, qid, self.frame_source.last_record)
        return context, frames, result, dict(gen_kwargs or {})

    def _answer_batch(self, batch: list[tuple[str, Any, Any, dict]]) -> list[str]:
        """Answers for ``(context, frames, result, gen_kwargs)`` items; default: one at a time."""
        return [self._answer(*item) for item in batch]

    def _answer(self, context: str, frames: Any, result: Any, gen_kwargs: dict) -> str:
        """One answer; models answering in batches implement :meth:`_answer_batch` instead."""
        return self._answer_batch([(context, frames, result, gen_kwargs)])[0]

    # -- where the frames of each answer go -------------------------------------------------
    def _record_frames(self, task: str, qid: str, record: Any) -> None:
        """Keep ``record`` (the IndexRecord of the frames answering ``qid``) for the task's
        ``process_results`` (samples file) and, when wanted, the side log."""
        FRAME_BOOK.put(task, qid, record)
        if self.side_log is not None:
            self.side_log.write(record, task)

    def _record_failure(self, task: str, qid: str, error: BaseException) -> None:
        self.failures.add(task, qid, error)
        FRAME_BOOK.fail(task, qid, str(error))

    def _open_side_log(self) -> None:
        """The side log of this ``generate_until`` call (files are created on first use only)."""
        if self.side_log is not None:
            return
        stamp = self._shared_value(log_stamp())  # rank 0's date id on every rank: one file name per task
        template = side_log_template(self._selection_log_arg, self.model_name, self.frame_source.mode, stamp,
                                     self.world_size)
        self.side_log = SideLog(template, explicit=self._selection_log_arg is not None, rank=self.rank)

    def _shared_value(self, value: str) -> str:
        """Rank 0's ``value`` on every rank (the value itself without a process group)."""
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                box = [value]
                dist.broadcast_object_list(box, src=0)
                value = box[0]
        return value

    def _finish_side_log(self) -> None:
        """Close the side log; with several ranks, rank 0 merges the per-rank files (after a barrier)."""
        side_log, self.side_log = self.side_log, None
        if side_log is None:
            return
        side_log.close()
        if self.world_size <= 1:
            return
        self._barrier()
        if self.rank == 0:
            merge_rank_logs(side_log.template)
        self._barrier()

    def _barrier(self) -> None:
        """Wait for every rank (torch.distributed when lmms-eval or accelerate started a process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        elif getattr(self, "accelerator", None) is not None:
            self.accelerator.wait_for_everyone()
