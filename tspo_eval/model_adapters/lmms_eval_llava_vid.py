"""lmms-eval model ``llava_vid_tspo``: LLaVA-Video fed TSPO frames, two backends chosen from the checkpoint.

* ``hf`` - transformers' ``LlavaOnevisionForConditionalGeneration`` (config ``model_type:
  llava_onevision``, e.g. ``llava-hf/LLaVA-Video-7B-Qwen2-hf``): the selected frames go to the
  processor as one video and the prompt carries LLaVA-Video's time preamble with the *selected*
  frames' real times (``add_time_instruction=true`` by default).
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

import numpy as np
import torch
from loguru import logger

from tspo_eval.errors import CheckpointError, InputError, TspoEvalError
from tspo_eval.model_adapters.lmms_eval_common import (
    TspoLmms,
    doc_question,
    doc_video,
    generation_settings,
    hf_load_kwargs,
    init_params,
    pop_tspo_options,
    reject_unknown,
    time_instruction,
)

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


class LlavaVidTSPO(TspoLmms):
    """LLaVA-Video with TSPO/index/uniform frames (see the module doc for the two backends).

    model_args beside the TSPO ones: ``pretrained``, ``backend``, ``device_map``, ``dtype``/
    ``torch_dtype``, ``attn_implementation``, ``max_new_tokens`` (overrides the task's),
    ``use_cache``, ``add_time_instruction`` (default true), ``system_prompt``, ``selection_log``;
    with ``backend=llava`` also the arguments of lmms-eval's ``llava_vid`` (``conv_template``,
    ``mm_spatial_pool_stride``, ...).
    """

    model_name = "llava_vid_tspo"

    def __init__(
        self,
        pretrained: str = "llava-hf/LLaVA-Video-7B-Qwen2-hf",
        backend: str = "auto",
        device: str | None = None,
        device_map: str | None = None,
        batch_size: int | str = 1,
        dtype: str = "auto",
        torch_dtype: str | None = None,
        attn_implementation: str | None = None,
        max_new_tokens: int | None = None,
        use_cache: bool = True,
        add_time_instruction: bool = True,
        system_prompt: str | None = None,
        selection_log: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("max_batch_size", None)
        tspo_options = pop_tspo_options(kwargs, self.model_name)
        if backend not in BACKENDS:
            raise InputError(f"{self.model_name}: backend={backend!r} is not one of {', '.join(BACKENDS)}")
        self.backend = checkpoint_backend(pretrained) if backend == "auto" else backend
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.use_cache, self.add_time_instruction = bool(use_cache), bool(add_time_instruction)
        self.system_prompt = system_prompt
        self.delegate: LlavaNextFrames | None = None
        if self.backend == "llava":
            inner = self._load_llava_next(pretrained, kwargs, tspo_options, device, device_map, batch_size,
                                          torch_dtype or dtype, attn_implementation)
            self._setup_frames(tspo_options, selection_log)
            self.delegate = LlavaNextFrames(inner, self.frame_source)
            return
        reject_unknown(self.model_name, kwargs, init_params(type(self)))
        from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

        from tspo_eval.agent.devices import resolve_dtype

        self._setup_runtime(device, batch_size)
        placement = str(self._device) if self.world_size > 1 or not device_map else device_map
        self._model = LlavaOnevisionForConditionalGeneration.from_pretrained(
            pretrained, **hf_load_kwargs(resolve_dtype(torch_dtype or dtype, self._device), placement, attn_implementation)
        ).eval()
        self.processor = AutoProcessor.from_pretrained(pretrained)
        self._tokenizer = self.processor.tokenizer
        self._setup_frames(tspo_options, selection_log)

    def _load_llava_next(self, pretrained: str, extra: dict[str, Any], tspo_options: dict[str, Any], device: Any,
                         device_map: Any, batch_size: Any, dtype: str, attn_implementation: str | None):
        """lmms-eval's ``llava_vid`` model for an original LLaVA-NeXT checkpoint (needs ``llava``)."""
        if not llava_package_available():
            raise CheckpointError(pretrained, f"is an original LLaVA-NeXT checkpoint; {LLAVA_PACKAGE_HINT}")
        from lmms_eval.models.simple.llava_vid import LlavaVid

        accepted = set(init_params(LlavaVid))
        reject_unknown(self.model_name, {k: v for k, v in extra.items() if k not in accepted},
                       [*init_params(type(self)), *sorted(accepted)])
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

    def _answer_request(self, request: Any) -> str:
        if self.delegate is None:
            return super()._answer_request(request)
        context, _, doc_to_visual, doc_id, task, split = request.args[:6]
        doc = self.task_dict[task][split][doc_id]
        question, qid = doc_question(task, doc, doc_id, context)
        try:
            doc_video(task, doc_id, doc, doc_to_visual)
        except TspoEvalError as exc:
            self.failures.add(task, qid, exc)
            return ""
        answer, error = self.delegate.answer(request, question, qid, task)
        if error is not None:
            self.failures.add(task, qid, error)
            return ""
        return answer

    def _answer(self, context: str, frames: np.ndarray, result: Any, gen_kwargs: dict) -> str:
        """Generate with the HF LLaVA-OneVision model from the prompt and frames uint8 [K,H,W,3]."""
        text = context.replace("<image>", "").replace("<video>", "").strip()
        if self.add_time_instruction:
            text = time_instruction(result) + "\n" + text
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]})
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        logger.debug(f"{self.model_name} prompt: {prompt!r}")
        extra = {"do_sample_frames": False} if hasattr(getattr(self.processor, "video_processor", None), "do_sample_frames") else {}
        inputs = self.processor(text=[prompt], videos=[np.ascontiguousarray(frames)], return_tensors="pt", **extra)
        device = next(self._model.parameters()).device
        inputs = inputs.to(device)
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self._model.dtype)
        settings = generation_settings(gen_kwargs, 1024, self.max_new_tokens)
        with torch.inference_mode():
            output = self._model.generate(**inputs, eos_token_id=self._tokenizer.eos_token_id,
                                          pad_token_id=self._tokenizer.pad_token_id, use_cache=self.use_cache,
                                          **settings)
        answer = self.processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
        logger.debug(f"{self.model_name}: {len(frames)} frames -> {answer!r}")
        return answer


def _accelerator():
    from accelerate import Accelerator

    return Accelerator()
