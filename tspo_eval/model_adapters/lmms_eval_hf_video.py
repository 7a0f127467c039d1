"""lmms-eval model ``hf_video_tspo``: any supported Hugging Face video-LLM fed TSPO/index/uniform frames.

The model only translates lmms-eval requests: frames come from the
:class:`~tspo_eval.frame_source.FrameSource`, answers from the host-independent
:class:`~tspo_eval.answering.hf_video.HFVideoAnswerer` (``AutoModelForImageTextToText`` +
``AutoProcessor`` + the checkpoint's chat template; the selected frames go to the processor as one
video with their true frame numbers and times). What differs per family lives in
:data:`tspo_eval.answering.families.FAMILIES`, keyed by the checkpoint's ``model_type``.

``qwen2_5_vl_tspo``, ``qwen3_vl_tspo`` and the transformers backend of ``llava_vid_tspo`` are
presets of this class: a default checkpoint, the families they accept, a default system prompt.
"""
from __future__ import annotations

from typing import Any, ClassVar

from loguru import logger

from tspo_eval.answering import AnswerRequest, GenerationSettings
from tspo_eval.answering.qwen_pixels import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_TOTAL_PIXELS,
)
from tspo_eval.errors import InputError
from tspo_eval.frame_source import pop_host_options
from tspo_eval.model_adapters.lmms_eval_common import (
    TspoLmms,
    init_params,
    reject_unknown,
)


class HFVideoTSPO(TspoLmms):
    """Any supported HF video-LLM with TSPO/index/uniform frames.

    model_args beside the TSPO ones: ``pretrained`` (a folder or hub id), ``device``,
    ``device_map``, ``batch_size`` (requests generated together, left-padded), ``dtype`` /
    ``torch_dtype`` (``auto``: bf16 on CUDA, fp32 on CPU), ``attn_implementation``, ``min_pixels``,
    ``max_pixels``, ``total_pixels`` (Qwen families' video budget), ``system_prompt``,
    ``max_new_tokens`` (overrides the task's), ``use_cache``, ``add_time_instruction`` (default: the
    family's), ``exact_frame_times`` (Qwen3-VL: one written time per frame), ``selection_log``.
    """

    model_name = "hf_video_tspo"
    #: preset defaults (subclasses)
    default_pretrained: ClassVar[str | None] = None
    accepted_model_types: ClassVar[tuple[str, ...]] = ()  # empty: every supported family
    default_system_prompt: ClassVar[str | None] = None
    default_max_new_tokens: ClassVar[int] = 1024

    def __init__(
        self,
        pretrained: str | None = None,
        device: str | None = None,
        device_map: str | None = None,
        batch_size: int | str = 1,
        dtype: str = "auto",
        torch_dtype: str | None = None,
        attn_implementation: str | None = None,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        total_pixels: int = DEFAULT_TOTAL_PIXELS,
        system_prompt: str | None = None,
        max_new_tokens: int | None = None,
        use_cache: bool = True,
        add_time_instruction: bool | None = None,
        exact_frame_times: bool = False,
        selection_log: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("max_batch_size", None)
        tspo_options = pop_host_options(kwargs, self.model_name)
        reject_unknown(self.model_name, kwargs, init_params(HFVideoTSPO))
        pretrained = pretrained or self.default_pretrained
        if not pretrained:
            raise InputError(f"{self.model_name}: pretrained= is required (a checkpoint folder or hub id)")
        self._setup_runtime(device, batch_size)
        self.answerer = self._load_answerer(
            pretrained, device_map=device_map, dtype=torch_dtype or dtype, attn_implementation=attn_implementation,
            system_prompt=self.default_system_prompt if system_prompt is None else (system_prompt or None),
            add_time_instruction=add_time_instruction, min_pixels=int(min_pixels), max_pixels=int(max_pixels),
            total_pixels=int(total_pixels), use_cache=bool(use_cache), exact_frame_times=bool(exact_frame_times))
        self._model, self._tokenizer = self.answerer.model, self.answerer.tokenizer
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self._setup_frames(tspo_options, selection_log)

    def _load_answerer(self, pretrained: str, *, device_map: str | None, dtype: str, attn_implementation: str | None,
                       **options: Any):
        from tspo_eval.answering.hf_video import HFVideoAnswerer

        placement = str(self._device) if self.world_size > 1 or not device_map else device_map
        return HFVideoAnswerer.from_pretrained(pretrained, device=self._device, device_map=placement, dtype=dtype,
                                               attn_implementation=attn_implementation,
                                               accepted_model_types=self.accepted_model_types or (),
                                               requested_as=self.model_name, **options)

    def _answer_batch(self, batch: list[tuple[str, Any, Any, dict]]) -> list[str]:
        """Answers for ``(context, frames, result, gen_kwargs)`` items, generated ``batch_size`` at a time."""
        requests = [
            AnswerRequest.from_selection(
                result, frames, context,
                GenerationSettings.from_task_kwargs(gen_kwargs, self.default_max_new_tokens, self.max_new_tokens),
                item=result.video)
            for context, frames, result, gen_kwargs in batch
        ]
        answers = self.answerer.answer(requests, batch_size=self.batch_size_per_gpu)
        for request, answer in zip(requests, answers):
            logger.debug("{}: {} frames of {} -> {!r}", self.model_name, len(request.frames), request.item, answer)
        return answers


class Qwen2_5_VL_TSPO(HFVideoTSPO):
    """``qwen2_5_vl_tspo`` (alias ``qwen_2_5_vl_tspo``): :class:`HFVideoTSPO` preset for Qwen2.5-VL."""

    model_name = "qwen2_5_vl_tspo"
    default_pretrained = "Qwen/Qwen2.5-VL-7B-Instruct"
    accepted_model_types = ("qwen2_5_vl",)
    default_system_prompt = "You are a helpful assistant."
    default_max_new_tokens = 32768


class Qwen3_VL_TSPO(HFVideoTSPO):
    """``qwen3_vl_tspo``: :class:`HFVideoTSPO` preset for Qwen3-VL (the processor writes each frame
    pair's true time into the prompt)."""

    model_name = "qwen3_vl_tspo"
    default_pretrained = "Qwen/Qwen3-VL-8B-Instruct"
    accepted_model_types = ("qwen3_vl",)
    default_max_new_tokens = 32768
