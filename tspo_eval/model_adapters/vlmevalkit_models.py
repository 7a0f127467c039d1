"""VLMEvalKit models: a TSPO frame-index generator and TSPO-wrapped video LLMs.

They follow VLMEvalKit's model protocol (``generate(message, dataset)``, ``use_custom_prompt``,
``build_prompt``, ``nframe``, ``VIDEO_LLM = True``: a message carries the video *path*) without
importing VLMEvalKit, so this module imports and is tested without it; the launcher registers
them in ``vlmeval.config.supported_VLM`` (:func:`model_table`).

* ``TSPO_FrameIndex`` (:class:`FrameIndexGenerator`): no VLM; selects frames and returns the
  :class:`IndexRecord` JSON as the "prediction", and writes it to an index JSONL.
* ``*-TSPO`` (:class:`TspoVideoLLM`): the lmms-eval TSPO models of this package (Qwen2.5-VL,
  LLaVA-Video / LLaVA-OneVision through transformers) run on frames from their
  :class:`~tspo_eval.frame_source.FrameSource`, so lmms-eval and VLMEvalKit share one frame path
  and one model path.

The call order these models answer to is VLMEvalKit's ``infer_data``
(``vlmeval/inference_video.py``), per sample: if the model's ``nframe`` differs from a frame-count
dataset's, the ``nframe`` setter gets the dataset's (an fps dataset sets ``None``); then
``use_custom_prompt(name)`` picks ``model.build_prompt(row, dataset=...)`` or
``dataset.build_prompt(index)``; then ``generate(message, dataset=name)``.  The question id and
the selector's question come from the dataset row on every path (see
:mod:`~tspo_eval.model_adapters.vlmevalkit_messages`); a question that gets no frames is answered
with VLMEvalKit's failure message, so VLMEvalKit counts (and retries) it.
"""
from __future__ import annotations

import functools
import importlib
import os
from typing import Any

from loguru import logger

from tspo_eval.errors import InputError, TspoEvalError
from tspo_eval.model_adapters.vlmevalkit_jobs import current_job, query_for_message
from tspo_eval.model_adapters.vlmevalkit_messages import (
    VideoQuery,
    normalize_message,
    row_question_id,
)
from tspo_eval.model_adapters.vlmevalkit_summary import failure_answer

#: kind -> dotted path of the lmms-eval TSPO model class that runs the VLM
VLM_CLASSES: dict[str, str] = {
    "qwen2_5_vl": "tspo_eval.model_adapters.lmms_eval_hf_video.Qwen2_5_VL_TSPO",
    "llava_video": "tspo_eval.model_adapters.lmms_eval_llava_vid.LlavaVidTSPO",
    "llava_onevision": "tspo_eval.model_adapters.lmms_eval_llava_vid.LlavaVidTSPO",
}
#: registered name -> (class name, default keyword arguments)
MODEL_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "TSPO_FrameIndex": ("FrameIndexGenerator", {}),
    "Qwen2.5-VL-7B-Instruct-TSPO": ("TspoVideoLLM", {"kind": "qwen2_5_vl", "pretrained": "Qwen/Qwen2.5-VL-7B-Instruct"}),
    "LLaVA-Video-7B-Qwen2-TSPO": ("TspoVideoLLM", {"kind": "llava_video", "pretrained": "llava-hf/LLaVA-Video-7B-Qwen2-hf"}),
    "LLaVA-OneVision-7B-TSPO": ("TspoVideoLLM", {"kind": "llava_onevision",
                                                 "pretrained": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}),
}
#: frame-source options both model kinds accept (FrameSourceOptions fields)
FRAME_OPTIONS = ("frame_selection", "tspo_path", "num_frames", "strategy", "scorer", "clip_model", "feature_cache",
                 "frame_index", "missing", "short", "decoder", "fps", "device", "dtype")
#: model arguments only the generator takes (dropped from the VLM entries of --model-args) and vice versa
GENERATOR_ONLY = ("index_out",)
VLM_ONLY = ("selection_log",)


# ---- the common protocol ----------------------------------------------------------------------------
class TspoVideoModel:
    """What VLMEvalKit's ``infer_data`` uses: ``generate``, ``use_custom_prompt``, ``build_prompt``,
    ``VIDEO_LLM``, ``nframe``.

    ``nframe`` reads the current K; VLMEvalKit sets it to a frame-count dataset's count (only when
    they differ) and to ``None`` for an fps dataset, which restores the model's own
    ``num_frames``.  ``use_custom_prompt`` is True exactly for frame-count datasets (VLMEvalKit
    refuses custom prompts on fps datasets).
    """

    VIDEO_LLM = True
    INTERLEAVE = False
    is_api = False
    IS_GENERATOR = False
    allowed_types = ("text", "video", "image")  # images: VLMEvalKit's frames when VIDEO_LLM is switched off
    fps = None  # no fps-driven sampling: VLMEvalKit then sets ``nframe = None`` for fps datasets
    DEFAULT_LOG = "tspo_frames_{task}.jsonl"

    def __init__(self, num_frames: int = 64, log_template: str | None = None) -> None:
        self.default_num_frames = int(num_frames)
        self.num_frames = self.default_num_frames
        self._log_template = log_template
        self._own_log: Any = None
        self._fps_dataset_pending = False  # the setter saw ``None`` (fps dataset) since the last use_custom_prompt

    @property
    def nframe(self) -> int:
        return self.num_frames

    @nframe.setter
    def nframe(self, value: int | None) -> None:
        if value:
            self.num_frames = int(value)
            self._fps_dataset_pending = False
        else:  # an fps dataset (or none): the model's own frame budget
            self.num_frames = self.default_num_frames
            self._fps_dataset_pending = True

    def use_custom_prompt(self, dataset: str | None) -> bool:
        """True for frame-count datasets: VLMEvalKit then calls :meth:`build_prompt` with the row.

        Inside the launcher the running dataset's ``nframe`` decides; elsewhere the setter's last
        word does (VLMEvalKit calls it with ``None`` before every sample of an fps dataset and not
        at all when a frame-count dataset's count equals the model's).
        """
        fps_dataset, self._fps_dataset_pending = self._fps_dataset_pending, False
        job = current_job()
        if job is not None:
            return job.nframe > 0
        return not fps_dataset

    def build_prompt(self, line: Any, dataset: Any = None, video_llm: bool = True) -> list[dict[str, Any]]:
        """The dataset's own prompt with the video (also when VLMEvalKit asks for frames), the row's
        question and id attached to the video item."""
        if dataset is None or not hasattr(dataset, "build_prompt"):
            raise InputError("build_prompt needs the VLMEvalKit dataset object")
        name = getattr(dataset, "dataset_name", None)
        question = str(line.get("question", "")) if hasattr(line, "get") else ""
        qid = row_question_id(line, name)
        row = line.copy() if hasattr(line, "copy") else line  # some datasets edit line["question"] in place
        message = normalize_message(dataset.build_prompt(row, video_llm=True))
        for item in message:
            if item["type"] == "video":
                item["question"] = question
                if qid is not None:
                    item["question_id"] = qid
        return message

    def generate(self, message: Any, dataset: str | None = None) -> str:
        """The answer to one VLMEvalKit message; VLMEvalKit's failure message when it gets no frames."""
        job = current_job()
        task = job.task if job is not None else (dataset or "unknown")
        try:
            items = normalize_message(message)
            bad = sorted({m["type"] for m in items if m["type"] not in self.allowed_types})
            if bad:
                raise InputError(f"{type(self).__name__}: unsupported message item types {bad}")
            query = query_for_message(items, dataset)
        except InputError as exc:
            return self._frameless(task, None, exc)
        self._attach_log()
        self._sync_num_frames()
        try:
            return self.answer(query, task)
        except TspoEvalError as exc:  # a missing/broken video, a question missing under missing=error
            return self._frameless(task, query.question_id, exc)

    def answer(self, query: VideoQuery, task: str) -> str:  # pragma: no cover - per model kind
        raise NotImplementedError

    def _frameless(self, task: str, qid: str | None, error: BaseException) -> str:
        logger.error("[{}] {}: no frames, answered with VLMEvalKit's failure message: {}", task, qid or "?", error)
        return failure_answer(str(error))

    def _attach_log(self) -> None:
        """Point the frame source's log at this job's file (or this model's own file outside a job)."""
        from tspo_eval.frame_source import SelectionLog

        job = current_job()
        if job is not None:
            template = self._log_template or job.default_template(self.IS_GENERATOR)
            self.frame_source.log = job.log_for(template)
            return
        if self._own_log is None:
            self._own_log = SelectionLog(self._log_template or self.DEFAULT_LOG, rank=_rank())
        self.frame_source.log = self._own_log

    def _sync_num_frames(self) -> None:
        """Make the frame source select ``self.num_frames`` (the dataset's nframe may have changed it)."""
        from dataclasses import replace

        if self.frame_source.options.num_frames != self.num_frames:
            self.frame_source.options = replace(self.frame_source.options, num_frames=self.num_frames)


def _rank() -> int:
    """This process's rank under torchrun (VLMEvalKit's data parallelism), 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def _frame_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in list(kwargs) if k in FRAME_OPTIONS}


class FrameIndexGenerator(TspoVideoModel):
    """Writes frame indices as predictions: each answer is one :class:`IndexRecord` JSON line.

    Args: the frame-source options (``tspo_path``, ``num_frames``, ``strategy``, ``scorer``, ...)
    and ``index_out``: the JSONL the records go to (``{task}`` = the dataset name the run uses,
    ``{rank}``); default: ``<work-dir>/<model>_<dataset>.jsonl`` through the launcher
    (``TSPO_FrameIndex_LVBench_64frame.jsonl``), ``tspo_frame_index_{task}.jsonl`` elsewhere.
    """

    IS_GENERATOR = True
    DEFAULT_LOG = "tspo_frame_index_{task}.jsonl"

    def __init__(self, index_out: str | None = None, use_vllm: bool = False, **kwargs: Any) -> None:
        from tspo_eval.frame_source import FrameSource

        if use_vllm:
            raise InputError("TSPO_FrameIndex does not use vLLM")
        options = _frame_options(kwargs)
        if kwargs:
            raise InputError(f"TSPO_FrameIndex: unknown arguments {', '.join(sorted(kwargs))}")
        super().__init__(int(options.pop("num_frames", 64)), log_template=index_out)
        mode = options.pop("frame_selection", "tspo")
        self.frame_source = FrameSource.from_options(mode, num_frames=self.num_frames, **options)

    def answer(self, query: VideoQuery, task: str) -> str:
        result = self.frame_source.select(query.video, query.question, query.question_id, task)
        if not result.frame_indices:
            from tspo_eval.errors import VideoError

            raise VideoError(query.video, "no frames selected (empty video?)")
        record = self.frame_source.record(result, query.question_id, task)  # also written to the job's index file
        return record.to_json()


class TspoVideoLLM(TspoVideoModel):
    """A video LLM of this package's lmms-eval adapters, fed TSPO (or index / uniform) frames.

    Args: ``kind`` (``qwen2_5_vl``, ``llava_video``, ``llava_onevision``), ``pretrained``,
    ``selection_log`` (JSONL template with ``{task}`` / ``{rank}``; default: the run's
    ``<model>_<dataset>_tspo_frames.jsonl`` next to its predictions), ``max_new_tokens``, and the
    arguments of the lmms-eval model, with its names: the TSPO ones (``frame_selection``,
    ``tspo_path``, ``num_frames``, ``strategy``, ``scorer``, ``frame_index``, ``missing``,
    ``tspo_device``, ...) and the VLM's (``device``, ``dtype``, ``attn_implementation``, ...).
    """

    def __init__(self, kind: str = "qwen2_5_vl", pretrained: str | None = None, selection_log: str | None = None,
                 max_new_tokens: int = 128, use_vllm: bool = False, **kwargs: Any) -> None:
        if kind not in VLM_CLASSES:
            raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(VLM_CLASSES)}")
        if use_vllm:
            raise InputError(f"{kind}: the TSPO models run through transformers, not vLLM")
        super().__init__(int(kwargs.get("num_frames", 64)), log_template=selection_log)
        module, cls_name = VLM_CLASSES[kind].rsplit(".", 1)
        cls = getattr(importlib.import_module(module), cls_name)
        args = {**kwargs, "max_new_tokens": int(max_new_tokens)}
        if pretrained:
            args["pretrained"] = pretrained
        self.kind = kind
        self.inner = cls(**args)
        if getattr(self.inner, "delegate", None) is not None:
            raise InputError(f"{pretrained}: the VLMEvalKit wrapper runs transformers checkpoints only "
                             "(use the -hf conversion of LLaVA-Video)")
        self.frame_source = self.inner.frame_source

    def answer(self, query: VideoQuery, task: str) -> str:
        frames, result = self.frame_source.frames_for(query.video, query.question, query.question_id, task)
        return self.inner._answer(query.prompt, frames, result, {"temperature": 0})


def model_table(overrides: dict[str, Any] | None = None, names: list[str] | None = None) -> dict[str, functools.partial]:
    """``{registered name: functools.partial(class, **defaults, **overrides)}`` for ``supported_VLM``.

    ``overrides`` (e.g. from ``--model-args``) apply to every entry that takes them (``index_out``
    only to the generator, ``selection_log`` only to the VLMs); ``names`` limits the table.
    """
    table = {}
    for name, (cls_name, defaults) in MODEL_SPECS.items():
        if names is not None and name not in names:
            continue
        cls = globals()[cls_name]
        skip = VLM_ONLY if cls is FrameIndexGenerator else GENERATOR_ONLY
        kept = {k: v for k, v in (overrides or {}).items() if k not in skip}
        table[name] = functools.partial(cls, **{**defaults, **kept})
    return table


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``"a=1,b=true,c=x"`` -> ``{"a": 1, "b": True, "c": "x"}`` (ints, floats, booleans converted)."""
    out: dict[str, Any] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InputError(f"--model-args: {part!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
        else:
            for cast in (int, float):
                try:
                    out[key] = cast(value)
                    break
                except ValueError:
                    continue
            else:
                out[key] = None if low == "none" else value
    return out
