"""lmms-eval model ``llava_vid_tspo``: LLaVA-Video fed TSPO frames, two backends chosen from the checkpoint.

* ``hf`` - transformers' ``LlavaOnevisionForConditionalGeneration`` (config ``model_type:
  llava_onevision``, e.g. ``llava-hf/LLaVA-Video-7B-Qwen2-hf``) through the generic
  :class:`~tspo_eval.model_adapters.lmms_eval_hf_video.HFVideoTSPO` (this class is its preset):
  the selected frames go to the processor as one video and the prompt carries LLaVA-Video's time
  preamble with the *selected* frames' true times (``add_time_instruction=true`` by default).
* ``llava`` - the original LLaVA-NeXT checkpoint (``lmms-lab/LLaVA-Video-7B-Qwen2``, config
  ``model_type: llava_qwen``) through lmms-eval's own ``llava_vid`` model, with its
  ``load_video`` replaced by our frame source.  Needs the LLaVA-NeXT ``llava`` package (not on
  PyPI; imports under transformers 4.4x): without it the model fails with a message saying so.

``backend=auto`` (default) reads ``config.json`` to choose; ``backend=hf|llava`` forces one.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from tspo_eval.errors import CheckpointError, InputError, TspoEvalError
from tspo_eval.frame_source import pop_host_options
from tspo_eval.model_adapters.lmms_eval_common import (
    TspoLmms,
    doc_question,
    init_params,
    reject_unknown,
)
from tspo_eval.model_adapters.lmms_eval_hf_video import HFVideoTSPO

BACKENDS = ("auto", "hf", "llava")
#: config model_type values of original LLaVA-NeXT checkpoints (served by lmms-eval's llava_vid)
LLAVA_NEXT_MODEL_TYPES = ("llava_qwen", "llava_llama", "llava_mistral", "llava_mixtral", "llava")
LLAVA_PACKAGE_HINT = (
    "it runs through lmms-eval's llava_vid, which needs the LLaVA-NeXT `llava` package "
    "(pip install 'llava @ git+https://github.com/LLaVA-VL/LLaVA-NeXT' in an environment with transformers 4.4x); "
    "or use the transformers conversion llava-hf/LLaVA-Video-7B-Qwen2-hf with this model (backend=hf)"
)


def read_checkpoint_config(pretrained: str) -> dict[str, Any]:
    """``config.json`` of a local folder or a hub id (hub cache / download)."""
    local = Path(pretrained) / "config.json"
    try:
        if local.is_file():
            return json.loads(local.read_text())
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(pretrained, "config.json")).read_text())
    except Exception as exc:  # noqa: BLE001 - any failure means: not a usable checkpoint
        raise CheckpointError(pretrained, f"cannot read config.json ({exc})") from None


def checkpoint_backend(pretrained: str, config: dict[str, Any] | None = None) -> str:
    """``"hf"`` for a transformers LLaVA-OneVision checkpoint, ``"llava"`` for an original LLaVA-NeXT one."""
    config = read_checkpoint_config(pretrained) if config is None else config
    model_type = str(config.get("model_type", ""))
    architectures = [str(a) for a in config.get("architectures") or []]
    if model_type == "llava_onevision" or "LlavaOnevisionForConditionalGeneration" in architectures:
        return "hf"
    if model_type in LLAVA_NEXT_MODEL_TYPES or any(a.startswith("Llava") and a.endswith("ForCausalLM") for a in architectures):
        return "llava"
    raise CheckpointError(pretrained, f"model_type {model_type!r} / architectures {architectures} is neither a "
                                      "transformers LLaVA-OneVision checkpoint nor an original LLaVA-NeXT one")


def llava_package_available() -> bool:
    return importlib.util.find_spec("llava") is not None


class LlavaNextFrames:
    """Drives lmms-eval's ``llava_vid`` model one request at a time with our frames.

    ``inner.load_video(path, max_frames_num, fps, force_sample)`` is replaced by a function that
    returns (frames uint8 [K,H,W,3], ``"t1s,t2s,..."`` frame times, video seconds) from the
    frame source for the question being answered.
    """

    def __init__(self, inner: Any, frame_source: Any) -> None:
        self.inner = inner
        self.frame_source = frame_source
        self.error: TspoEvalError | None = None
        self._pending: tuple[str, str, str] | None = None
        inner.load_video = self._load_video
        inner.video_decode_backend = "decord"  # the value under which llava_vid calls load_video

    def _load_video(self, video_path: str, max_frames_num: int = 0, fps: float = 1, force_sample: bool = False):
        if self._pending is None:
            raise RuntimeError("load_video called outside LlavaNextFrames.answer")
        question, qid, task = self._pending
        try:
            frames, result = self.frame_source.frames_for(video_path, question, qid, task)
        except TspoEvalError as exc:
            self.error = exc
            raise
        times = ",".join(f"{t:.2f}s" for t in result.timestamps)
        return frames, times, result.n_frames / result.avg_fps

    def answer(self, request: Any, question: str, qid: str, task: str) -> tuple[str, TspoEvalError | None]:
        """(inner model's answer, the frame error that made it fail or None)."""
        self._pending, self.error = (question, qid, task), None
        try:
            output = self.inner.generate_until([request])[0]
        finally:
            self._pending = None
        return output, self.error


class LlavaVidTSPO(HFVideoTSPO):
    """LLaVA-Video with TSPO/index/uniform frames (see the module doc for the two backends).

    model_args beside the TSPO ones: ``backend`` and those of :class:`HFVideoTSPO`; with
    ``backend=llava`` also the arguments of lmms-eval's ``llava_vid`` (``conv_template``,
    ``mm_spatial_pool_stride``, ...).
    """

    model_name = "llava_vid_tspo"
    default_pretrained = "llava-hf/LLaVA-Video-7B-Qwen2-hf"
    accepted_model_types = ("llava_onevision",)
    default_max_new_tokens = 1024

    def __init__(self, pretrained: str = "llava-hf/LLaVA-Video-7B-Qwen2-hf", backend: str = "auto",
                 **kwargs: Any) -> None:
        if backend not in BACKENDS:
            raise InputError(f"{self.model_name}: backend={backend!r} is not one of {', '.join(BACKENDS)}")
        self.backend = checkpoint_backend(pretrained) if backend == "auto" else backend
        self.delegate: LlavaNextFrames | None = None
        if self.backend == "hf":
            super().__init__(pretrained=pretrained, **kwargs)
            return
        TspoLmms.__init__(self)
        self._init_llava_next(pretrained, **kwargs)

    def _init_llava_next(self, pretrained: str, device: str | None = None, device_map: str | None = None,
                         batch_size: int | str = 1, dtype: str = "auto", torch_dtype: str | None = None,
                         attn_implementation: str | None = None, max_new_tokens: int | None = None,
                         use_cache: bool = True, add_time_instruction: bool | None = None,
                         selection_log: str | None = None, **kwargs: Any) -> None:
        """The original LLaVA-NeXT backend: lmms-eval's ``llava_vid`` with our frames."""
        kwargs.pop("max_batch_size", None)
        tspo_options = pop_host_options(kwargs, self.model_name)
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.use_cache = bool(use_cache)
        self.add_time_instruction = True if add_time_instruction is None else bool(add_time_instruction)
        inner = self._load_llava_next(pretrained, kwargs, tspo_options, device, device_map, batch_size,
                                      torch_dtype or dtype, attn_implementation)
        self._setup_frames(tspo_options, selection_log)
        self.delegate = LlavaNextFrames(inner, self.frame_source)

    def _load_llava_next(self, pretrained: str, extra: dict[str, Any], tspo_options: dict[str, Any], device: Any,
                         device_map: Any, batch_size: Any, dtype: str, attn_implementation: str | None):
        """lmms-eval's ``llava_vid`` model for an original LLaVA-NeXT checkpoint (needs ``llava``)."""
        if not llava_package_available():
            raise CheckpointError(pretrained, f"is an original LLaVA-NeXT checkpoint; {LLAVA_PACKAGE_HINT}")
        from lmms_eval.models.simple.llava_vid import LlavaVid

        accepted = set(init_params(LlavaVid))
        reject_unknown(self.model_name, {k: v for k, v in extra.items() if k not in accepted},
                       [*init_params(HFVideoTSPO), "backend", *sorted(accepted)])
        torch_dtype = {"auto": "bfloat16", "bf16": "bfloat16", "fp16": "float16"}.get(str(dtype), str(dtype))
        args: dict[str, Any] = {"conv_template": "qwen_1_5", **extra, "pretrained": pretrained,
                                "max_frames_num": int(tspo_options.get("num_frames", 64)),
                                "add_time_instruction": self.add_time_instruction, "torch_dtype": torch_dtype,
                                "batch_size": batch_size, "use_cache": self.use_cache}
        for name, value in (("device", device), ("device_map", device_map), ("attn_implementation", attn_implementation)):
            if value is not None:
                args[name] = value
        inner = LlavaVid(**args)
        inner.task_dict = self.task_dict  # the same dict lmms-eval fills for this model
        self._model, self._tokenizer = inner.model, inner.tokenizer
        self._device, self._rank, self._world_size = inner.device, inner.rank, inner.world_size
        self.accelerator = getattr(inner, "accelerator", None) or _accelerator()
        self.batch_size_per_gpu = 1
        return inner

    def _answer_requests(self, chunk: Any) -> list[str]:
        if self.delegate is None:
            return super()._answer_requests(chunk)
        return [self._answer_with_llava_next(request) for request in chunk]

    def _answer_with_llava_next(self, request: Any) -> str:
        context, _, _, doc_id, task, split = request.args[:6]
        doc = self.task_dict[task][split][doc_id]
        question, qid = doc_question(task, doc, doc_id, context)
        try:
            self._video_of(request)
        except TspoEvalError as exc:
            self._record_failure(task, qid, exc)
            return ""
        self.frame_source.last_record = None
        answer, error = self.delegate.answer(request, question, qid, task)
        if error is not None:
            self._record_failure(task, qid, error)
            return ""
        if self.frame_source.last_record is not None:  # llava_vid asked for our frames
            self._record_frames(task, qid, self.frame_source.last_record)
        return answer


def _accelerator():
    from accelerate import Accelerator

    return Accelerator()
