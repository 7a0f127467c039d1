"""Plumbing shared by the lmms-eval TSPO models (``qwen2_5_vl_tspo``, ``llava_vid_tspo``).

* :func:`pop_tspo_options` takes the TSPO ``model_args`` out of the constructor kwargs (built-in
  lmms-eval constructors ``assert kwargs == {}``) and :func:`reject_unknown` names leftovers;
* :func:`doc_question` / :func:`doc_video` read the question, its id and the video path from the
  doc of the built-in tasks (LongVideoBench, Video-MME, MLVU, LVBench) and the ``tspo_*`` tasks;
* :func:`selection_log_template` finds where lmms-eval writes this run's results, so the frame
  side log lands next to them (``<output_path>/<model dir>/<date>_tspo_frames_<task>.jsonl``);
* :class:`TspoLmms` is the base model: rank/device set-up, one :class:`FrameSource` per rank, the
  ``generate_until`` loop, failure counting and the per-rank side-log merge.
"""
from __future__ import annotations

import inspect
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmms_eval.api.model import lmms
from loguru import logger

from tspo_eval.errors import InputError, TspoEvalError, VideoError
from tspo_eval.frame_source import FrameSource, FrameSourceOptions, SelectionLog, benchmark_for_task

#: model_args name -> FrameSourceOptions field (the TSPO options every TSPO model accepts)
TSPO_MODEL_ARGS: dict[str, str] = {
    "frame_selection": "frame_selection", "tspo_path": "tspo_path", "num_frames": "num_frames",
    "strategy": "strategy", "scorer": "scorer", "clip_model": "clip_model", "feature_cache": "feature_cache",
    "frame_index": "frame_index", "missing": "missing", "short": "short", "decoder": "decoder",
    "candidate_fps": "fps", "tspo_device": "device", "tspo_dtype": "dtype",
}
#: further model_args handled by the shared plumbing
COMMON_MODEL_ARGS = ("selection_log",)

#: question-id fields of the docs, by benchmark (first present wins), then generic ones
_ID_FIELDS: dict[str, tuple[str, ...]] = {
    "longvideobench": ("id",),
    "videomme": ("question_id",),
    "mlvu": ("question_id",),
    "lvbench": ("uid", "question_id"),
}
_GENERIC_ID_FIELDS = ("question_id", "qid", "id", "uid")


def pop_tspo_options(kwargs: dict[str, Any], model: str = "tspo") -> dict[str, Any]:
    """Remove the TSPO model_args from ``kwargs`` (in place); return them as FrameSourceOptions fields.

    The values are checked here, before any model is loaded (:class:`InputError` naming the option).
    """
    options = {TSPO_MODEL_ARGS[name]: kwargs.pop(name) for name in list(kwargs) if name in TSPO_MODEL_ARGS}
    FrameSourceOptions.from_dict(options, owner=model)
    return options


def reject_unknown(model: str, leftover: dict[str, Any], known: Sequence[str]) -> None:
    """:class:`InputError` naming every unknown model_arg and the accepted ones."""
    if leftover:
        names = ", ".join(sorted(leftover))
        accepted = ", ".join(sorted({*known, *TSPO_MODEL_ARGS, *COMMON_MODEL_ARGS}))
        raise InputError(f"{model}: unknown model_args {names}; accepted: {accepted}")


def init_params(cls: type) -> list[str]:
    """Named parameters of ``cls.__init__`` (the model_args a model accepts besides the TSPO ones)."""
    return [n for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def doc_question(task: str, doc: dict[str, Any], doc_id: int, context: str) -> tuple[str, str]:
    """(question text for the selector, question id) of one doc.

    The text is the doc's ``question`` field (the selector cuts the options off itself), else the
    prompt; the id comes from the benchmark's id field, else ``<task>:<doc_id>``.
    """
    question = doc.get("question") if isinstance(doc, dict) else None
    if not isinstance(question, str) or not question.strip():
        question = context
    fields = _ID_FIELDS.get(benchmark_for_task(task), ()) + _GENERIC_ID_FIELDS
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


def find_run_output() -> tuple[Path, str] | None:
    """(``<output_path>/<model dir>``, date id) of the running lmms-eval evaluation, or None.

    lmms-eval does not hand the output path to models; ``simple_evaluate`` holds it in its
    ``evaluation_tracker`` (with the ``datetime_str`` used in the results' file names), so look
    for that frame on the call stack.
    """
    frame = inspect.currentframe()
    while frame is not None:
        tracker = frame.f_locals.get("evaluation_tracker")
        stamp = frame.f_locals.get("datetime_str")
        if tracker is not None and isinstance(stamp, str) and getattr(tracker, "output_path", None):
            model_dir = getattr(getattr(tracker, "general_config_tracker", None), "model_name_sanitized", None)
            if model_dir:
                return Path(tracker.output_path) / model_dir, stamp.replace(":", "-")
        frame = frame.f_back
    return None


def selection_log_template(explicit: str | None, model: str, rank: int, world_size: int) -> str:
    """Path template (``{task}``, ``{rank}``) of the frame side log.

    ``explicit``: a ``.jsonl`` path (may hold ``{task}``) or a folder. Default: next to the
    results of the running evaluation, else ``./tspo_selection_logs``.  With several ranks each
    rank writes its own ``.rank<r>`` file (merged by rank 0 at the end).
    """
    if explicit:
        text = os.fspath(explicit)
        template = text if text.endswith(".jsonl") else os.path.join(text, "tspo_frames_{task}.jsonl")
    else:
        found = find_run_output()
        if found is not None:
            folder, date_id = found
            template = str(folder / f"{date_id}_tspo_frames_{{task}}.jsonl")
        else:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            template = os.path.join("tspo_selection_logs", f"{stamp}_{model}_tspo_frames_{{task}}.jsonl")
            logger.warning(f"lmms-eval output path not found; frame selections go to {template} (set selection_log=)")
    if world_size > 1 and "{rank}" not in template:
        template = template[: -len(".jsonl")] + ".rank{rank}.jsonl" if template.endswith(".jsonl") else template + ".rank{rank}"
    return template


@dataclass
class FailureLog:
    """Samples that got no answer because their video (or its frames) could not be used."""

    failed: dict[tuple[str, str], str] = field(default_factory=dict)  # (task, question id) -> error

    def add(self, task: str, qid: str, error: BaseException) -> None:
        self.failed[(task, qid)] = str(error)
        logger.error(f"[{task}] {qid}: no frames, answer left empty (scored wrong): {error}")

    @property
    def items(self) -> list[tuple[str, str, str]]:
        """(task, question id, error) of each failed sample (padding duplicates counted once)."""
        return [(task, qid, error) for (task, qid), error in self.failed.items()]

    def summary(self, total: int, all_failed: int | None = None, all_total: int | None = None) -> None:
        """Log this rank's failures (by name) and, with several ranks, the run's totals."""
        if self.items:
            logger.warning(f"{len(self.items)} of {total} samples failed (missing/broken videos): "
                           + "; ".join(f"{t}/{q}" for t, q, _ in self.items[:20])
                           + (" ..." if len(self.items) > 20 else ""))
        else:
            logger.info(f"all {total} samples got frames (0 failures)")
        if all_total is not None:
            logger.info(f"all ranks: {all_failed} of {all_total} samples failed (missing/broken videos)")


def generation_settings(gen_kwargs: dict[str, Any], default_max_new_tokens: int,
                        max_new_tokens: int | None) -> dict[str, Any]:
    """HF ``generate`` keyword arguments from a task's ``generation_kwargs``.

    The model_arg ``max_new_tokens`` (when set) overrides the task's; temperature 0 is greedy.
    """
    temperature = float(gen_kwargs.get("temperature", 0) or 0)
    settings: dict[str, Any] = {
        "max_new_tokens": int(max_new_tokens or gen_kwargs.get("max_new_tokens") or default_max_new_tokens),
        "num_beams": int(gen_kwargs.get("num_beams", 1) or 1),
        "do_sample": temperature > 0,
    }
    if temperature > 0:
        settings["temperature"] = temperature
        if gen_kwargs.get("top_p") is not None:
            settings["top_p"] = float(gen_kwargs["top_p"])
    return settings


def cut_at_stop(text: str, until: Any) -> str:
    """``text`` up to the first of the task's ``until`` strings (``"\\n\\n"`` ignored, as lmms-eval's Qwen does)."""
    stops = [until] if isinstance(until, str) else list(until or [])
    for stop in stops:
        if stop and stop != "\n\n":
            text = text.split(stop)[0]
    return text


def time_instruction(result: Any) -> str:
    """LLaVA-Video's time preamble for the *selected* frames: video length, frame count, frame times."""
    duration = result.n_frames / result.avg_fps if result.avg_fps else 0.0
    times = ",".join(f"{t:.2f}s" for t in result.timestamps)
    return (f"The video lasts for {duration:.2f} seconds, and {len(result.frame_indices)} frames are sampled "
            f"from it. These frames are located at {times}.Please answer the following questions related to this video.")


def hf_load_kwargs(dtype: Any, device_map: Any, attn_implementation: str | None) -> dict[str, Any]:
    """``from_pretrained`` kwargs for transformers 4.4x (``torch_dtype``) and 5.x (``dtype``)."""
    import transformers

    kwargs: dict[str, Any] = {"device_map": device_map}
    kwargs["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = dtype
    if attn_implementation:
        allowed = ("eager", "sdpa", "flash_attention_2", "flash_attention_3")
        if attn_implementation not in allowed:
            raise InputError(f"attn_implementation={attn_implementation!r} is not one of {', '.join(allowed)}")
        if attn_implementation.startswith("flash_attention"):
            import importlib.util

            if importlib.util.find_spec("flash_attn") is None and importlib.util.find_spec("flash_attn_interface") is None:
                raise InputError(f"attn_implementation={attn_implementation} needs flash-attn (pip install flash-attn)")
        kwargs["attn_implementation"] = attn_implementation
    return kwargs


class TspoLmms(lmms):
    """Base of the TSPO lmms-eval models: frames from a :class:`FrameSource`, answers from ``_answer``.

    Subclasses load their VLM, then call :meth:`_setup_frames`, and implement
    ``_answer(context, frames, result, gen_kwargs) -> str``.
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
        self.batch_size_per_gpu = int(batch_size) if str(batch_size).isdigit() else 1
        if self.batch_size_per_gpu > 1:
            logger.info(f"{self.model_name}: batch_size={batch_size}: samples are generated one at a time "
                        "(each has its own frames)")

    def _setup_frames(self, tspo_options: dict[str, Any], selection_log: str | None) -> None:
        """One FrameSource per rank on this rank's device (the feature cache folder is shared)."""
        options = dict(tspo_options)
        options.setdefault("device", str(self._device))
        frame_selection = options.pop("frame_selection", "tspo")
        self.frame_source = FrameSource.from_options(frame_selection, **options)
        self._selection_log_arg = selection_log
        self.failures = FailureLog()
        self._seen: set[tuple[str, int]] = set()  # (task, doc_id): lmms-eval pads ranks with duplicates
        logger.info(f"{self.model_name}: frame_selection={self.frame_source.mode}, "
                    f"num_frames={self.frame_source.options.num_frames}, strategy={self.frame_source.options.strategy}")

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
        """One answer per request: select frames, decode them, generate; failed videos answer ``""``."""
        from tqdm import tqdm

        if self.frame_source.log is None:
            template = selection_log_template(self._selection_log_arg, self.model_name, self.rank, self.world_size)
            template = self._shared_template(template)
            self.frame_source.log = SelectionLog(template, rank=self.rank)
            logger.info(f"{self.model_name}: logging frame selections to {template}")
        answers: list[str] = []
        for request in tqdm(requests, disable=self.rank != 0, desc="Model Responding (TSPO frames)"):
            answers.append(self._answer_request(request))
            self._seen.add((request.args[4], request.args[3]))
            context, gen_kwargs = request.args[:2]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), answers[-1])
        self._finish_logs()
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

    def _answer_request(self, request: Any) -> str:
        """The answer to one lmms-eval ``generate_until`` Instance (``""`` when its video failed)."""
        context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args[:6]
        gen_kwargs = dict(gen_kwargs or {})
        doc = self.task_dict[task][split][doc_id]
        question, qid = doc_question(task, doc, doc_id, context)
        try:
            video = doc_video(task, doc_id, doc, doc_to_visual)
            frames, result = self.frame_source.frames_for(video, question, qid, task)
        except TspoEvalError as exc:
            self.failures.add(task, qid, exc)
            return ""
        answer = self._answer(context, frames, result, gen_kwargs)
        logger.debug(f"[{task}] {qid}: answer {answer!r}")
        return cut_at_stop(answer, gen_kwargs.get("until"))

    def _answer(self, context: str, frames: Any, result: Any, gen_kwargs: dict) -> str:  # pragma: no cover
        raise NotImplementedError

    def _shared_template(self, template: str) -> str:
        """Rank 0's template on every rank (the date id in it may differ by a second between ranks)."""
        if self.world_size > 1:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                box = [template]
                dist.broadcast_object_list(box, src=0)
                template = box[0]
        return template

    def _finish_logs(self) -> None:
        """Close the side logs; with several ranks, rank 0 merges the per-rank files (after a barrier)."""
        log = self.frame_source.log
        if log is None:
            return
        log.close()
        if self.world_size <= 1:
            return
        self._barrier()
        if self.rank == 0:
            merge_rank_logs(log.template)
        self._barrier()

    def _barrier(self) -> None:
        """Wait for every rank (torch.distributed when lmms-eval or accelerate started a process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        elif getattr(self, "accelerator", None) is not None:
            self.accelerator.wait_for_everyone()


def merge_rank_logs(template: str) -> list[Path]:
    """Merge the ``.rank<r>`` side logs of ``template`` (every task) into one file per task."""
    import glob
    import re

    from tspo_eval.frame_index_cache.index_store import merge_index_files

    groups: dict[str, list[Path]] = {}
    for name in glob.glob(template.replace("{task}", "*").replace("{rank}", "*")):
        merged = re.sub(r"\.rank\d+(?=\.jsonl$|$)", "", name)
        groups.setdefault(merged, []).append(Path(name))
    for merged, parts in sorted(groups.items()):
        count = merge_index_files(sorted(parts), merged)
        for part in parts:
            part.unlink(missing_ok=True)
        logger.info(f"merged {len(parts)} rank logs into {merged} ({count} questions)")
    return [Path(m) for m in sorted(groups)]
