"""VLMEvalKit models: a TSPO frame-index generator and TSPO-wrapped video LLMs.

They follow VLMEvalKit's model protocol (``generate(message, dataset)``, ``use_custom_prompt``,
``build_prompt``, ``nframe``, ``VIDEO_LLM = True``: a message carries the video *path*) without
importing VLMEvalKit, so this module imports and is tested without it; the launcher registers
them in ``vlmeval.config.supported_VLM`` (:func:`model_table`).

* ``TSPO_FrameIndex`` (:class:`FrameIndexGenerator`): no VLM; selects frames and returns the
  :class:`IndexRecord` JSON as the "prediction", and writes it to an index JSONL.
* ``*-TSPO`` (:class:`TspoVideoLLM`): any supported Hugging Face video LLM (Qwen2.5-VL, Qwen3-VL,
  LLaVA-Video / LLaVA-OneVision, InternVL3/3.5, SmolVLM2) answering through the package's
  host-independent :class:`~tspo_eval.answering.hf_video.HFVideoAnswerer` from the frames of a
  :class:`~tspo_eval.frame_source.FrameSource`: the same frame path and the same model path as
  the lmms-eval models, and no import of lmms-eval.

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

#: model kinds: the answering layer's families, ``hf`` (any of them) and the legacy name ``llava_video``
KIND_ALIASES: dict[str, str] = {"llava_video": "llava_onevision"}
#: registered name -> (class name, default keyword arguments)
MODEL_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "TSPO_FrameIndex": ("FrameIndexGenerator", {}),
    "Qwen2.5-VL-7B-Instruct-TSPO": ("TspoVideoLLM", {"kind": "qwen2_5_vl", "pretrained": "Qwen/Qwen2.5-VL-7B-Instruct"}),
    "Qwen3-VL-8B-Instruct-TSPO": ("TspoVideoLLM", {"kind": "qwen3_vl", "pretrained": "Qwen/Qwen3-VL-8B-Instruct"}),
    "LLaVA-Video-7B-Qwen2-TSPO": ("TspoVideoLLM", {"kind": "llava_video", "pretrained": "llava-hf/LLaVA-Video-7B-Qwen2-hf"}),
    "LLaVA-OneVision-7B-TSPO": ("TspoVideoLLM", {"kind": "llava_onevision",
                                                 "pretrained": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}),
    "InternVL3_5-8B-TSPO": ("TspoVideoLLM", {"kind": "internvl", "pretrained": "OpenGVLab/InternVL3_5-8B-HF"}),
}
#: answerer arguments TspoVideoLLM passes to HFVideoAnswerer.from_pretrained
ANSWERER_OPTIONS = ("device", "device_map", "dtype", "attn_implementation", "min_pixels", "max_pixels", "total_pixels",
                    "system_prompt", "add_time_instruction", "exact_frame_times", "use_cache")
#: the generator has no VLM: its ``device`` / ``dtype`` / ``fps`` are the selector's
GENERATOR_ALIASES = {"device": "tspo_device", "dtype": "tspo_dtype", "fps": "candidate_fps"}
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
        self._look_ahead(query)
        try:
            return self.answer(query, task)
        except TspoEvalError as exc:  # a missing/broken video, a question missing under missing=error
            return self._frameless(task, query.question_id, exc)

    def answer(self, query: VideoQuery, task: str) -> str:  # pragma: no cover - per model kind
        raise NotImplementedError

    def _look_ahead(self, query: VideoQuery) -> None:
        """Plan the videos of the job's next rows (``lookahead=N``, tspo frames, inside the launcher;
        see :mod:`~tspo_eval.model_adapters.vlmevalkit_lookahead`); a new job ends the last one's plan."""
        from tspo_eval.model_adapters.vlmevalkit_lookahead import UpcomingRows

        source = self.frame_source
        job = current_job()
        if job is None or not source.lookahead_wanted:
            return
        rows = getattr(self, "_upcoming", None)
        if rows is None or rows.job is not job:
            source.stop_lookahead()
            rows = self._upcoming = UpcomingRows(job)
        source.plan([query.video, *rows.videos_after(query, source.options.lookahead)])

    def close(self) -> None:
        """Stop the lookahead thread (the launcher's job wrapper also does when a job ends)."""
        self.frame_source.stop_lookahead()

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
        if self.frame_source.options.num_frames != self.num_frames:
            self.frame_source.options = self.frame_source.options.with_num_frames(self.num_frames)


def _rank() -> int:
    """This process's rank under torchrun (VLMEvalKit's data parallelism), 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def _generator_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The generator's frame-source arguments (host names; ``device`` etc. taken as the selector's)."""
    from tspo_eval.frame_source import pop_host_options

    for plain, host in GENERATOR_ALIASES.items():
        if plain in kwargs:
            kwargs.setdefault(host, kwargs.pop(plain))
    return pop_host_options(kwargs, owner="TSPO_FrameIndex")


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
        options = _generator_options(kwargs)
        if kwargs:
            raise InputError(f"TSPO_FrameIndex: unknown arguments {', '.join(sorted(kwargs))}")
        super().__init__(int(options.pop("num_frames", 64)), log_template=index_out)
        mode = options.pop("frame_selection", "tspo")
        self.frame_source = FrameSource.from_options(mode, num_frames=self.num_frames, **options)

    def answer(self, query: VideoQuery, task: str) -> str:
        result, source = self.frame_source.choose(query.video, query.question, query.question_id, task)
        if not result.frame_indices:
            from tspo_eval.errors import VideoError

            raise VideoError(query.video, "no frames selected (empty video?)")
        record = self.frame_source.record(result, query.question_id, task, source=source)  # also to the job's index
        return record.to_json()


class TspoVideoLLM(TspoVideoModel):
    """A Hugging Face video LLM fed TSPO (or index / uniform) frames, answering through the answering layer.

    Args: ``kind`` (a family of :data:`tspo_eval.answering.FAMILIES`, ``hf`` for any, or
    ``llava_video``), ``pretrained``, ``selection_log`` (JSONL template with ``{task}`` /
    ``{rank}``; default: the run's ``<model>_<dataset>_tspo_frames.jsonl`` next to its predictions),
    ``max_new_tokens``, the frame-source arguments with the lmms-eval models' names
    (:data:`~tspo_eval.frame_source.HOST_ARGUMENTS`: ``frame_selection``, ``tspo_path``,
    ``num_frames``, ``strategy``, ``frame_index``, ``missing``, ``tspo_device``, ...) and the
    answerer's (:data:`ANSWERER_OPTIONS`: ``device``, ``dtype``, ``attn_implementation``, ...).
    """

    def __init__(self, kind: str = "qwen2_5_vl", pretrained: str | None = None, selection_log: str | None = None,
                 max_new_tokens: int = 128, use_vllm: bool = False, **kwargs: Any) -> None:
        from tspo_eval.answering import FAMILIES, GenerationSettings
        from tspo_eval.frame_source import FrameSource, pop_host_options

        family = KIND_ALIASES.get(kind, kind)
        if family not in FAMILIES and family != "hf":
            raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join([*FAMILIES, 'hf', *KIND_ALIASES])}")
        if use_vllm:
            raise InputError(f"{kind}: the TSPO models run through transformers, not vLLM")
        if not pretrained:
            raise InputError(f"{kind}: pretrained= is required (a checkpoint folder or hub id)")
        frame_options = pop_host_options(kwargs, owner=f"{kind} (VLMEvalKit)")
        answerer_options = {k: kwargs.pop(k) for k in list(kwargs) if k in ANSWERER_OPTIONS}
        if kwargs:
            raise InputError(f"{kind} (VLMEvalKit): unknown arguments {', '.join(sorted(kwargs))}; accepted: "
                             f"{', '.join(sorted([*ANSWERER_OPTIONS, 'selection_log', 'max_new_tokens']))} and the "
                             "frame-source arguments")
        super().__init__(int(frame_options.get("num_frames", 64)), log_template=selection_log)
        self.kind = kind
        self.answerer = self._load_answerer(family, pretrained, answerer_options)
        frame_options.setdefault("tspo_device", str(self.answerer.device))
        self.frame_source = FrameSource.from_options(frame_options.pop("frame_selection", "tspo"), **frame_options)
        self.generation = GenerationSettings(max_new_tokens=int(max_new_tokens))

    @staticmethod
    def _load_answerer(family: str, pretrained: str, options: dict[str, Any]):
        from tspo_eval.answering.spec import AnswererSpec, build_answerer

        return build_answerer(AnswererSpec(family, pretrained, {k: str(v) for k, v in options.items()}))

    def answer(self, query: VideoQuery, task: str) -> str:
        from tspo_eval.answering import AnswerRequest

        frames, result = self.frame_source.frames_for(query.video, query.question, query.question_id, task)
        request = AnswerRequest.from_selection(result, frames, query.prompt, self.generation,
                                               item=query.question_id or query.video)
        return self.answerer.answer([request])[0]


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
