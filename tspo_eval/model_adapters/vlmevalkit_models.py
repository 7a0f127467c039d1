"""VLMEvalKit models: a TSPO frame-index generator and TSPO-wrapped video LLMs.

They follow VLMEvalKit's model protocol (``generate(message, dataset)``, ``use_custom_prompt``,
``build_prompt``, ``VIDEO_LLM = True``: a message carries the video *path*, not frames) without
importing VLMEvalKit, so this module imports and is tested without it; the launcher registers
them in ``vlmeval.config.supported_VLM`` (:func:`model_table`).

* ``TSPO_FrameIndex`` (:class:`FrameIndexGenerator`): no VLM; selects frames and returns the
  :class:`IndexRecord` JSON as the "prediction", and appends it to an index JSONL.
* ``*-TSPO`` (:class:`TspoVideoLLM`): the lmms-eval TSPO models of this package (Qwen2.5-VL,
  LLaVA-Video / LLaVA-OneVision through transformers) run on frames from their
  :class:`~tspo_eval.frame_source.FrameSource`, so lmms-eval and VLMEvalKit share one frame path
  and one model path.

Question ids: when VLMEvalKit builds prompts through the model (the dataset has ``nframe > 0``),
the row's id travels with the video item (``question_id``: LongVideoBench ``id``, our TSVs'
``question_id``, Video-MME's from its row position), so ``frame_selection=index`` works;
otherwise the id is ``<dataset>:<video>:<hash of the question>``.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import os
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.errors import InputError, TspoEvalError

#: kind -> dotted path of the lmms-eval TSPO model class that runs the VLM
VLM_CLASSES: dict[str, str] = {
    "qwen2_5_vl": "tspo_eval.model_adapters.lmms_eval_qwen2_5_vl.Qwen2_5_VL_TSPO",
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
_ID_COLUMNS = ("question_id", "id", "uid", "qid")
#: frame-source options both model kinds accept (FrameSourceOptions fields)
FRAME_OPTIONS = ("frame_selection", "tspo_path", "num_frames", "strategy", "scorer", "clip_model", "feature_cache",
                 "frame_index", "missing", "short", "decoder", "fps", "device", "dtype")


# ---- messages ---------------------------------------------------------------------------------------
def normalize_message(message: Any) -> list[dict[str, Any]]:
    """VLMEvalKit's accepted message shapes (str, dict, list of str, list of dicts) -> list of dicts."""
    if isinstance(message, str):
        return [{"type": "text", "value": message}]
    if isinstance(message, dict):
        message = [message]
    if not isinstance(message, list):
        raise InputError(f"unsupported message type {type(message).__name__}")
    items = []
    for item in message:
        if isinstance(item, str):
            is_video = os.path.splitext(item)[1].lower() in (".mp4", ".mkv", ".webm", ".avi", ".mov")
            items.append({"type": "video" if is_video else "text", "value": item})
        elif isinstance(item, dict) and "type" in item and "value" in item:
            items.append(item)
        else:
            raise InputError(f"malformed message item {item!r}"[:200])
    return items


def split_message(message: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(prompt text of the text items, the one video item); InputError without exactly one video."""
    videos = [m for m in message if m["type"] == "video"]
    if len(videos) != 1:
        raise InputError(f"a TSPO video model needs exactly one video in the message, got {len(videos)}")
    text = "\n".join(str(m["value"]) for m in message if m["type"] == "text" and str(m["value"]).strip())
    return text, videos[0]


def row_question_id(line: Any, dataset_name: str | None) -> str | None:
    """Question id of a VLMEvalKit data row (a pandas Series or dict), or None."""
    get = line.get if hasattr(line, "get") else (lambda k, d=None: d)
    for column in _ID_COLUMNS:
        value = get(column, None)
        if value is not None and str(value) not in ("", "nan"):
            return str(value)
    index = get("index", None)
    if dataset_name and "videomme" in dataset_name.lower().replace("-", "").replace("_", "") and index is not None:
        # VLMEvalKit's Video-MME TSV keeps the parquet row order: 3 questions per video, ids "001-1".. "900-3"
        i = int(index)
        return f"{i // 3 + 1:03d}-{i % 3 + 1}"
    return None


def fallback_question_id(dataset: str | None, video: str, question: str) -> str:
    digest = hashlib.sha1(question.encode("utf-8")).hexdigest()[:10]
    return f"{dataset or 'unknown'}:{Path(video).stem}:{digest}"


# ---- the common protocol ----------------------------------------------------------------------------
class TspoVideoModel:
    """What VLMEvalKit's ``infer_data`` uses: ``generate``, ``use_custom_prompt``, ``build_prompt``,
    ``VIDEO_LLM``, ``nframe`` (set to the dataset's frame count when it has one; that count is
    then the K of the selection)."""

    VIDEO_LLM = True
    INTERLEAVE = False
    is_api = False
    allowed_types = ("text", "video")
    fps = None  # no fps-driven sampling; VLMEvalKit leaves ``nframe`` alone for fps datasets

    def __init__(self, num_frames: int = 64) -> None:
        self.num_frames = int(num_frames)
        self._dataset_nframe: int | None = None

    @property
    def nframe(self) -> int:
        return self.num_frames

    @nframe.setter
    def nframe(self, value: int | None) -> None:
        # VLMEvalKit sets the dataset's nframe (or None for fps datasets) before each sample
        self._dataset_nframe = int(value) if value else None
        if value:
            self.num_frames = int(value)

    def use_custom_prompt(self, dataset: str | None) -> bool:
        """True when VLMEvalKit may call :meth:`build_prompt` (it requires ``nframe > 0``)."""
        return bool(self._dataset_nframe)

    def build_prompt(self, line: Any, dataset: Any = None, video_llm: bool = True) -> list[dict[str, Any]]:
        """The dataset's own prompt, with the row's question stem and id attached to the video item."""
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
        items = normalize_message(message)
        bad = [m["type"] for m in items if m["type"] not in self.allowed_types]
        if bad:
            raise InputError(f"{type(self).__name__}: unsupported message item types {bad}")
        return self.generate_inner(items, dataset)

    def _question(self, message: list[dict[str, Any]], dataset: str | None) -> tuple[str, str, str, str]:
        """(prompt text, video path, question for the selector, question id) of a message."""
        prompt, video = split_message(message)
        question = str(video.get("question") or prompt)
        qid = str(video.get("question_id") or fallback_question_id(dataset, str(video["value"]), question))
        return prompt, str(video["value"]), question, qid

    def _sync_num_frames(self, frame_source: Any) -> None:
        """Make the frame source select ``self.num_frames`` (the dataset's nframe may have changed it)."""
        from dataclasses import replace

        if frame_source.options.num_frames != self.num_frames:
            frame_source.options = replace(frame_source.options, num_frames=self.num_frames)

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:  # pragma: no cover
        raise NotImplementedError


def _rank() -> int:
    """This process's rank under torchrun (VLMEvalKit's data parallelism), 0 otherwise."""
    return int(os.environ.get("RANK", "0"))


def _frame_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in list(kwargs) if k in FRAME_OPTIONS}


class FrameIndexGenerator(TspoVideoModel):
    """Writes frame indices as predictions: each answer is one :class:`IndexRecord` JSON line.

    Args: the frame-source options (``tspo_path``, ``num_frames``, ``strategy``, ``scorer``, ...)
    and ``index_out``: the JSONL the records are appended to (``{task}`` = the dataset name;
    default ``tspo_frame_index_{task}.jsonl`` in the working directory).
    """

    def __init__(self, index_out: str | None = None, use_vllm: bool = False, **kwargs: Any) -> None:
        from tspo_eval.frame_source import FrameSource, SelectionLog

        if use_vllm:
            raise InputError("TSPO_FrameIndex does not use vLLM")
        options = _frame_options(kwargs)
        if kwargs:
            raise InputError(f"TSPO_FrameIndex: unknown arguments {', '.join(sorted(kwargs))}")
        super().__init__(int(options.pop("num_frames", 64)))
        mode = options.pop("frame_selection", "tspo")
        self.frame_source = FrameSource.from_options(mode, num_frames=self.num_frames, **options)
        self.log = SelectionLog(index_out or "tspo_frame_index_{task}.jsonl", rank=_rank())

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        from tspo_eval.frame_index_cache.index_store import IndexRecord
        from tspo_eval.frame_source import benchmark_for_task

        _, video, question, qid = self._question(message, dataset)
        self._sync_num_frames(self.frame_source)
        try:
            result = self.frame_source.select(video, question, qid, dataset)
        except TspoEvalError as exc:
            logger.error(f"[{dataset}] {qid}: {exc}")
            return f"ERROR: {exc}"
        record = IndexRecord.from_selection(result, benchmark_for_task(dataset), qid, Path(video).name,
                                            num_frames=self.num_frames)
        self.log.write(record, dataset)
        return record.to_json()


class TspoVideoLLM(TspoVideoModel):
    """A video LLM of this package's lmms-eval adapters, fed TSPO (or index / uniform) frames.

    Args: ``kind`` (``qwen2_5_vl``, ``llava_video``, ``llava_onevision``), ``pretrained``,
    ``selection_log`` (JSONL template with ``{task}``), ``max_new_tokens``, and the arguments of
    the lmms-eval model, with its names: the TSPO ones (``frame_selection``, ``tspo_path``,
    ``num_frames``, ``strategy``, ``scorer``, ``frame_index``, ``candidate_fps``, ``tspo_device``,
    ...) and the VLM's (``device``, ``dtype``, ``attn_implementation``, ...).
    """

    def __init__(self, kind: str = "qwen2_5_vl", pretrained: str | None = None, selection_log: str | None = None,
                 max_new_tokens: int = 128, use_vllm: bool = False, **kwargs: Any) -> None:
        from tspo_eval.frame_source import SelectionLog

        if kind not in VLM_CLASSES:
            raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(VLM_CLASSES)}")
        if use_vllm:
            raise InputError(f"{kind}: the TSPO models run through transformers, not vLLM")
        super().__init__(int(kwargs.get("num_frames", 64)))
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
        self.frame_source.log = SelectionLog(selection_log or "tspo_frames_{task}.jsonl", rank=_rank())

    def generate_inner(self, message: list[dict[str, Any]], dataset: str | None = None) -> str:
        prompt, video, question, qid = self._question(message, dataset)
        self._sync_num_frames(self.frame_source)
        try:
            frames, result = self.frame_source.frames_for(video, question, qid, dataset)
        except TspoEvalError as exc:  # a missing/broken video: no answer (scored wrong), run goes on
            logger.error(f"[{dataset}] {qid}: no frames: {exc}")
            return ""
        return self.inner._answer(prompt, frames, result, {"temperature": 0})


def model_table(overrides: dict[str, Any] | None = None, names: list[str] | None = None) -> dict[str, functools.partial]:
    """``{registered name: functools.partial(class, **defaults, **overrides)}`` for ``supported_VLM``.

    ``overrides`` (e.g. from ``--model-args``) apply to every entry; ``names`` limits the table.
    """
    table = {}
    for name, (cls_name, defaults) in MODEL_SPECS.items():
        if names is not None and name not in names:
            continue
        cls = globals()[cls_name]
        table[name] = functools.partial(cls, **{**defaults, **(overrides or {})})
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
