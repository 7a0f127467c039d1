"""lmms-eval model ``qwen2_5_vl_tspo`` (alias ``qwen_2_5_vl_tspo``): Qwen2.5-VL fed TSPO frames.

The frames chosen by the :class:`~tspo_eval.frame_source.FrameSource` go to the processor as
one video (uint8 [K,H,W,3], temporal order) together with their timing:

* transformers >= 4.52: ``video_metadata`` = the source video's frame count and fps and the
  selected frame numbers, ``do_sample_frames=False``.  The processor derives the sampling rate
  ``K / duration`` from it, hence ``second_per_grid_ts = temporal_patch_size * duration / K``;
* older transformers: the same rate as ``fps=K / duration``.

Qwen2.5-VL's M-RoPE has one time step per video (not per frame), so the positions span the
real length of the video at the selection's mean spacing; uneven gaps between selected frames
cannot be expressed (``add_time_instruction=true`` also states the exact times in the prompt).

Frame size follows qwen-vl-utils' video rules, as the built-in ``qwen2_5_vl`` model does:
``smart_resize`` to multiples of 28 with ``min_pixels``, ``max_pixels`` (per frame, capped at
768 tokens) and a ``total_pixels`` budget shared by the K frames.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from loguru import logger

from tspo_eval.errors import InputError
from tspo_eval.model_adapters.lmms_eval_common import (
    TspoLmms,
    generation_settings,
    hf_load_kwargs,
    init_params,
    pop_tspo_options,
    reject_unknown,
    time_instruction,
)

VIDEO_FRAME_MAX_TOKENS = 768  # qwen-vl-utils: per-frame cap for videos, in merged tokens
DEFAULT_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)  # qwen-vl-utils' default video budget


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Height/width rounded to multiples of ``factor`` with ``min_pixels <= h*w <= max_pixels``, aspect kept."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / scale / factor) * factor)
        w = max(factor, math.floor(width / scale / factor) * factor)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / factor) * factor
        w = math.ceil(width * scale / factor) * factor
    return h, w


def frame_size(num_frames: int, height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int,
               total_pixels: int, temporal_patch: int = 2) -> tuple[int, int]:
    """Per-frame (h, w) for a K-frame video under qwen-vl-utils' video budget rules."""
    cap = min(VIDEO_FRAME_MAX_TOKENS * factor * factor, total_pixels / max(num_frames, 1) * temporal_patch)
    per_frame = min(max_pixels, max(cap, int(min_pixels * 1.05)))
    return smart_resize(height, width, factor, min_pixels, int(per_frame))


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [K,H,W,3] -> uint8 [K,3,h,w], bicubic with antialiasing (as qwen-vl-utils)."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    out = torch.nn.functional.interpolate(video.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def video_timing_kwargs(processor: Any, result: Any) -> dict[str, Any]:
    """Processor kwargs that give the selected frames their real timing (see module doc)."""
    duration = result.n_frames / result.avg_fps if result.avg_fps else float(len(result.frame_indices))
    try:
        from transformers.video_utils import VideoMetadata
    except ImportError:  # transformers < 4.52: the processor takes the sampling rate itself
        return {"fps": [len(result.frame_indices) / max(duration, 1e-6)]}
    metadata = VideoMetadata(
        total_num_frames=int(result.n_frames), fps=float(result.avg_fps), duration=float(duration),
        frames_indices=[int(i) for i in result.frame_indices],
    )
    kwargs: dict[str, Any] = {"video_metadata": [metadata], "do_sample_frames": False}
    if hasattr(getattr(processor, "video_processor", None), "cap_pixels_per_frame"):
        kwargs["cap_pixels_per_frame"] = True  # frames already fit the budget: same result, no warning
    return kwargs


def build_qwen_inputs(processor: Any, frames: np.ndarray, result: Any, text: str, *, system_prompt: str | None,
                      min_pixels: int, max_pixels: int, total_pixels: int):
    """Processor outputs (``input_ids``, ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``)
    for one question: frames uint8 [K,H,W,3] resized under the video budget, chat prompt, real timing."""
    vp = getattr(processor, "video_processor", None) or processor.image_processor
    factor = int(getattr(vp, "patch_size", 14)) * int(getattr(vp, "merge_size", 2))
    size = frame_size(len(frames), frames.shape[1], frames.shape[2], factor=factor, min_pixels=min_pixels,
                      max_pixels=max_pixels, total_pixels=total_pixels,
                      temporal_patch=int(getattr(vp, "temporal_patch_size", 2)))
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]})
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    logger.debug(f"qwen2_5_vl_tspo prompt: {prompt!r}; {len(frames)} frames at {size[0]}x{size[1]}")
    return processor(text=[prompt], videos=[resize_frames(frames, size)], return_tensors="pt",
                     **video_timing_kwargs(processor, result))


class Qwen2_5_VL_TSPO(TspoLmms):
    """Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration`` + ``AutoProcessor``) with TSPO/index/uniform frames.

    model_args beside the TSPO ones: ``pretrained``, ``device_map``, ``dtype``/``torch_dtype``
    (``auto``: bf16 on CUDA, fp32 on CPU), ``attn_implementation``, ``min_pixels``, ``max_pixels``,
    ``total_pixels``, ``system_prompt``, ``max_new_tokens`` (overrides the task's), ``use_cache``,
    ``add_time_instruction``, ``selection_log``.
    """

    model_name = "qwen2_5_vl_tspo"

    def __init__(
        self,
        pretrained: str = "Qwen/Qwen2.5-VL-7B-Instruct",
        device: str | None = None,
        device_map: str | None = None,
        batch_size: int | str = 1,
        dtype: str = "auto",
        torch_dtype: str | None = None,
        attn_implementation: str | None = None,
        min_pixels: int = 256 * 28 * 28,
        max_pixels: int = 1605632,
        total_pixels: int = DEFAULT_TOTAL_PIXELS,
        system_prompt: str = "You are a helpful assistant.",
        max_new_tokens: int | None = None,
        use_cache: bool = True,
        add_time_instruction: bool = False,
        selection_log: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        kwargs.pop("max_batch_size", None)
        tspo_options = pop_tspo_options(kwargs, self.model_name)
        reject_unknown(self.model_name, kwargs, init_params(type(self)))
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from tspo_eval.agent.devices import resolve_dtype

        self._setup_runtime(device, batch_size)
        torch_dtype_ = resolve_dtype(torch_dtype or dtype, self._device)
        placement = str(self._device) if self.world_size > 1 or not device_map else device_map
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            pretrained, **hf_load_kwargs(torch_dtype_, placement, attn_implementation)
        ).eval()
        self.processor = AutoProcessor.from_pretrained(pretrained, min_pixels=int(min_pixels), max_pixels=int(max_pixels))
        self._tokenizer = self.processor.tokenizer
        self.min_pixels, self.max_pixels, self.total_pixels = int(min_pixels), int(max_pixels), int(total_pixels)
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels:
            raise InputError(f"{self.model_name}: need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}")
        self.system_prompt = system_prompt
        self.max_new_tokens = int(max_new_tokens) if max_new_tokens else None
        self.use_cache = bool(use_cache)
        self.add_time_instruction = bool(add_time_instruction)
        self._setup_frames(tspo_options, selection_log)

    def _input_device(self) -> torch.device:
        return next(self._model.parameters()).device

    def _answer(self, context: str, frames: np.ndarray, result: Any, gen_kwargs: dict) -> str:
        """Generate an answer from the prompt and the selected frames (uint8 [K,H,W,3])."""
        text = context.replace("<image>", "").strip()
        if self.add_time_instruction:
            text = time_instruction(result) + "\n" + text
        inputs = build_qwen_inputs(self.processor, frames, result, text, system_prompt=self.system_prompt,
                                   min_pixels=self.min_pixels, max_pixels=self.max_pixels,
                                   total_pixels=self.total_pixels)
        logger.debug(f"{self.model_name}: {len(frames)} frames, video grid {inputs['video_grid_thw'].tolist()}")
        inputs = inputs.to(self._input_device())
        settings = generation_settings(gen_kwargs, 32768, self.max_new_tokens)
        with torch.inference_mode():
            output = self._model.generate(**inputs, eos_token_id=self._tokenizer.eos_token_id,
                                          pad_token_id=self._tokenizer.pad_token_id, use_cache=self.use_cache,
                                          **settings)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        answer = self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
        logger.debug(f"{self.model_name}: -> {answer!r}")
        return answer

