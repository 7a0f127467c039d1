"""One answerer for every Hugging Face video-LLM: ``AutoModelForImageTextToText`` + ``AutoProcessor``
+ the checkpoint's chat template.

The selected frames go to the processor as one video with its metadata (source frame numbers, fps,
frame count, duration) and the processor's own frame sampling switched off, so families that write
times into the prompt (Qwen3-VL, SmolVLM2) see the selected frames' true times, and Qwen2.5-VL gets
the right video length. For a variable-frame-rate source, the metadata's frame positions are the
frames' presentation times times the average fps (fractional), so the times the processor derives
are the true ones. Families without a notion of time get the time instruction in the prompt.

This layer imports no evaluation host: the lmms-eval and VLMEvalKit adapters and the trainer's
answerers all call :meth:`HFVideoAnswerer.answer`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.answering.families import ModelFamily, family_for
from tspo_eval.answering.qwen_pixels import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    DEFAULT_TOTAL_PIXELS,
    budget_frames,
)
from tspo_eval.answering.request import (
    AnswerRequest,
    GenerationSettings,
    time_instruction,
)
from tspo_eval.errors import CheckpointError, InputError

ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3")


def hf_load_kwargs(dtype: Any, device_map: Any, attn_implementation: str | None) -> dict[str, Any]:
    """``from_pretrained`` kwargs for transformers 4.4x (``torch_dtype``) and 5.x (``dtype``)."""
    import transformers

    kwargs: dict[str, Any] = {"device_map": device_map}
    kwargs["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = dtype
    if attn_implementation:
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise InputError(f"attn_implementation={attn_implementation!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
        if attn_implementation.startswith("flash_attention"):
            import importlib.util

            if importlib.util.find_spec("flash_attn") is None and importlib.util.find_spec("flash_attn_interface") is None:
                raise InputError(f"attn_implementation={attn_implementation} needs flash-attn (pip install flash-attn)")
        kwargs["attn_implementation"] = attn_implementation
    return kwargs


def video_metadata(request: AnswerRequest, repeat: int = 1) -> Any:
    """transformers' ``VideoMetadata`` of the selected frames (see the module doc for VFR sources);
    ``repeat``: each frame is given that many times (see ``exact_frame_times``)."""
    from transformers.video_utils import VideoMetadata

    positions: list[float] | list[int]
    if request.times_follow_frame_numbers:
        positions = [int(i) for i in request.frame_indices for _ in range(repeat)]
    else:
        positions = [float(t) * request.avg_fps for t in request.timestamps for _ in range(repeat)]
    return VideoMetadata(total_num_frames=int(request.n_frames), fps=float(request.avg_fps),
                         duration=float(request.duration), frames_indices=positions)


def read_model_type(pretrained: str) -> str:
    """``model_type`` from a folder's ``config.json`` or a hub id's config (hub cache when offline)."""
    import json

    local = Path(pretrained) / "config.json"
    try:
        if local.is_file():
            return str(json.loads(local.read_text(encoding="utf-8")).get("model_type", ""))
        from transformers import AutoConfig

        return str(getattr(AutoConfig.from_pretrained(pretrained), "model_type", ""))
    except Exception as exc:  # noqa: BLE001 - any failure means: not a usable checkpoint
        hint = "" if Path(pretrained).exists() else f" (offline? fetch it first with `hf download {pretrained}`)"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(pretrained, f"cannot read its config: {first_line}{hint}") from None


class HFVideoAnswerer:
    """A frozen Hugging Face video-LLM that answers :class:`AnswerRequest` s, greedy by default.

    Use :meth:`from_pretrained`; the constructor takes loaded parts (tests, custom loading).
    """

    def __init__(self, model: Any, processor: Any, family: ModelFamily, checkpoint: str = "", *,
                 system_prompt: str | None = None, add_time_instruction: bool | None = None,
                 min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS,
                 total_pixels: int = DEFAULT_TOTAL_PIXELS, use_cache: bool = True,
                 exact_frame_times: bool = False) -> None:
        self.model = model
        self.processor = processor
        self.family = family
        self.checkpoint = checkpoint
        self.system_prompt = system_prompt
        self.add_time_instruction = family.time_instruction if add_time_instruction is None else bool(add_time_instruction)
        self.min_pixels, self.max_pixels, self.total_pixels = int(min_pixels), int(max_pixels), int(total_pixels)
        if self.min_pixels <= 0 or self.max_pixels < self.min_pixels or self.total_pixels <= 0:
            raise InputError(f"{family.model_type}: need 0 < min_pixels <= max_pixels and total_pixels > 0, "
                             f"got {min_pixels}, {max_pixels}, {total_pixels}")
        self.use_cache = bool(use_cache)
        # families that merge frame pairs into one time step write the pair's mean time; giving every
        # frame twice makes each written time one frame's own time, at twice the visual tokens
        self.frame_repeat = family.temporal_patch if exact_frame_times and family.time_encoding == "timestamps" else 1
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"  # generation only: batches are padded on the left

    @classmethod
    def from_pretrained(cls, pretrained: str, *, device: Any = None, device_map: Any = None, dtype: Any = "auto",
                        attn_implementation: str | None = None, accepted_model_types: Sequence[str] = (),
                        requested_as: str = "", **options: Any) -> "HFVideoAnswerer":
        """Load a checkpoint folder or hub id of a supported family (see :data:`~tspo_eval.answering.families.FAMILIES`).

        Args:
            device: where the model runs (``None``: CUDA when available, else CPU); ignored with ``device_map``.
            dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16``, ``fp32``.
            accepted_model_types: the families the caller takes (a preset such as ``qwen3_vl_tspo``);
                empty: any supported family.  ``requested_as`` names the caller in the error.
            options: ``system_prompt``, ``add_time_instruction``, ``min_pixels``, ``max_pixels``,
                ``total_pixels``, ``use_cache``, ``exact_frame_times`` (see the constructor).

        Raises:
            CheckpointError: unreadable checkpoint, unsupported ``model_type`` (names the supported ones),
                a family the caller does not take, a processor without video support, no chat template.
        """
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from tspo_eval.agent.devices import resolve_device, resolve_dtype

        model_type = read_model_type(pretrained)
        if accepted_model_types and model_type not in accepted_model_types:
            raise CheckpointError(pretrained, f"is a {model_type!r} checkpoint; {requested_as or 'this model'} takes "
                                              f"{' or '.join(accepted_model_types)} (hf_video_tspo and the answerer "
                                              f"hf:{pretrained} take any supported family)")
        family = family_for(model_type, pretrained)
        resolved_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, resolved_device)
        processor = AutoProcessor.from_pretrained(pretrained)
        if getattr(processor, "video_processor", None) is None:
            raise CheckpointError(pretrained, f"its processor ({type(processor).__name__}) has no video support")
        if not (getattr(processor, "chat_template", None) or getattr(getattr(processor, "tokenizer", None), "chat_template", None)):
            raise CheckpointError(pretrained, "has no chat template (chat_template.jinja / chat_template.json or the "
                                              "tokenizer's chat_template); add the one of its base model")
        placement = device_map or str(resolved_device)
        model = AutoModelForImageTextToText.from_pretrained(
            pretrained, **hf_load_kwargs(torch_dtype, placement, attn_implementation)).eval()
        logger.info("answerer {} ({}): {} on {} in {}", pretrained, family.name, type(model).__name__,
                    placement, torch_dtype)
        return cls(model, processor, family, pretrained, **options)

    # -- prompts and inputs ------------------------------------------------------------------
    def prompt_text(self, request: AnswerRequest) -> str:
        """The user text: the time instruction (when on) and the host's prompt."""
        text = request.prompt.replace("<image>", "").replace("<video>", "").strip()
        return f"{time_instruction(request)}\n{text}" if self.add_time_instruction else text

    def chat_prompt(self, request: AnswerRequest) -> str:
        """The full prompt rendered by the checkpoint's chat template, with one video part."""
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": self.prompt_text(request)}]})
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _video(self, request: AnswerRequest) -> Any:
        import numpy as np

        frames = np.repeat(request.frames, self.frame_repeat, axis=0) if self.frame_repeat > 1 else request.frames
        if self.family.qwen_pixel_budget:
            return budget_frames(self.processor, frames, min_pixels=self.min_pixels,
                                 max_pixels=self.max_pixels, total_pixels=self.total_pixels)
        return np.ascontiguousarray(frames)

    def build_inputs(self, requests: Sequence[AnswerRequest]) -> Any:
        """Processor outputs for a batch (left-padded ``input_ids``, the videos' pixel values, grids)."""
        prompts = [self.chat_prompt(r) for r in requests]
        kwargs: dict[str, Any] = {"video_metadata": [video_metadata(r, self.frame_repeat) for r in requests],
                                  "do_sample_frames": False}
        if hasattr(self.processor.video_processor, "cap_pixels_per_frame"):
            kwargs["cap_pixels_per_frame"] = True  # frames already fit the budget: same result, no warning
        for prompt in prompts:
            logger.debug("{} prompt: {!r}", self.family.model_type, prompt)
        return self.processor(text=prompts, videos=[self._video(r) for r in requests], padding=True,
                              return_tensors="pt", **kwargs)

    # -- generation ----------------------------------------------------------------------------
    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def generate(self, inputs: Any, settings: GenerationSettings) -> list[str]:
        """The one generate-then-decode: new tokens only, special tokens skipped, spaces kept, stripped."""
        import torch

        inputs = inputs.to(self.device)
        for key in list(inputs.keys()):
            if key.startswith("pixel_values"):
                inputs[key] = inputs[key].to(self.model.dtype)
        with torch.inference_mode():
            output = self.model.generate(**inputs, eos_token_id=self.tokenizer.eos_token_id,
                                         pad_token_id=self.tokenizer.pad_token_id, use_cache=self.use_cache,
                                         **settings.generate_kwargs())
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return [text.strip() for text in texts]

    def _batch_key(self, request: AnswerRequest) -> tuple[str, int]:
        """Requests that may share a batch: same settings, and (unless the processor flattens patches
        as the Qwen families do) the same frame count, since their pixel values are stacked."""
        return repr(request.generation), 0 if self.family.qwen_pixel_budget else len(request.frames)

    def answer(self, requests: Sequence[AnswerRequest], batch_size: int = 1) -> list[str]:
        """One answer per request, in order.

        Requests are grouped by :meth:`_batch_key` and sorted by prompt length so that a batch of
        ``batch_size`` pads little; under greedy decoding the answers equal batch-1 answers.
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        answers = [""] * len(requests)
        keys = [self._batch_key(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (keys[i], len(self.prompt_text(requests[i]))))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < batch_size and keys[batches[-1][0]] == keys[i]:
                batches[-1].append(i)
            else:
                batches.append([i])
        for batch in batches:
            texts = self.generate(self.build_inputs([requests[i] for i in batch]), requests[batch[0]].generation)
            for i, text in zip(batch, texts):
                answers[i] = text
                logger.debug("{}: {} frames -> {!r}", requests[i].item or self.family.model_type, len(requests[i].frames), text)
        return answers
