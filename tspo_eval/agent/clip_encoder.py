"""A Hugging Face CLIP (image + text towers) behind two methods: ``encode_images`` and ``encode_texts``.

Shared by :class:`TemporalAgent` and :class:`ClipScorer`, so both compute identical features and
share the feature cache (same ``encoder_fingerprint``).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import Tensor

from tspo_eval.agent.checkpoint import list_weight_files
from tspo_eval.agent.clip_pixels import ClipPixels
from tspo_eval.agent.fingerprint import hash_safetensors, hash_tensors, short
from tspo_eval.agent.frames import encode_in_batches
from tspo_eval.agent.scorer import FrameBatch
from tspo_eval.errors import CheckpointError, InputError

#: image-processor settings that change pixel values (the rest are bookkeeping)
_PREPROCESSING_KEYS = (
    "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
    "do_normalize", "image_mean", "image_std", "do_convert_rgb",
)
_VISION_PREFIXES = ("vision_model.", "visual_projection.")


def pooled_features(output: Any) -> Tensor:
    """``get_*_features`` result as a tensor: transformers 4.x returns it, 5.x wraps it (``pooler_output``)."""
    if isinstance(output, Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, Tensor):
        return pooled
    return output[0]


def attention_implementation(device: torch.device, dtype: torch.dtype) -> str:
    """``flash_attention_2`` on CUDA half precision when flash-attn is installed, else ``sdpa``."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16) and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' weight-loading progress bar and info chatter while loading."""
    from transformers.utils import logging as hf_logging

    bars_were_disabled = hf_logging.is_progress_bar_enabled() is False
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if not bars_were_disabled:
            hf_logging.enable_progress_bar()


def _clip_model_class():
    from transformers import CLIPModel

    class ClipIgnoringSelector(CLIPModel):
        """CLIPModel that does not report the selector keys as unexpected (they are loaded explicitly)."""

        _keys_to_ignore_on_load_unexpected = [r"^selector\.", r"^multiModal_align\."]

    return ClipIgnoringSelector


def load_clip_model(path: Path, device: torch.device, dtype: torch.dtype):
    """``CLIPModel`` from a ``save_pretrained`` folder on ``device``/``dtype`` (eval mode, frozen)."""
    import transformers

    cls = _clip_model_class()
    dtype_kwarg = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    impl = attention_implementation(device, dtype)
    with _quiet_transformers():
        for attempt in (impl, "eager"):
            try:
                model = cls.from_pretrained(str(path), **{dtype_kwarg: dtype}, attn_implementation=attempt)
                break
            except (ValueError, ImportError) as exc:
                if attempt == "eager" or "attn" not in str(exc).lower():
                    raise CheckpointError(path, f"cannot load CLIP ({exc})") from exc
                logger.warning("attention {} unavailable for CLIP ({}); using eager", attempt, exc)
            except (OSError, RuntimeError, KeyError) as exc:
                raise CheckpointError(path, f"cannot load CLIP ({type(exc).__name__}: {exc})") from exc
    model.requires_grad_(False)
    return model.to(device).eval()


class HFClipEncoder:
    """CLIP towers + processor of one checkpoint folder; features float32 on CPU.

    Attributes: ``device``, ``dtype``, ``feature_dim``, ``pixels`` (frames -> pixel values, the
    processor's numbers: :class:`~tspo_eval.agent.clip_pixels.ClipPixels`), ``encoder_fingerprint`` (vision tower +
    image preprocessing + compute dtype), ``text_fingerprint`` (text tower + tokenizer).
    """

    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        self.path, self.device, self.dtype = Path(path), device, dtype
        self.model = load_clip_model(self.path, device, dtype)
        try:
            with _quiet_transformers():
                self.image_processor = AutoImageProcessor.from_pretrained(str(self.path))
                self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(self.path, f"cannot load the CLIP processor/tokenizer ({exc})") from exc
        self.pixels = ClipPixels(self.image_processor)
        self.feature_dim = int(self.model.config.projection_dim)
        self.max_text_tokens = int(min(self.model.config.text_config.max_position_embeddings, 77))
        self.encoder_fingerprint = self._fingerprint(_VISION_PREFIXES, self._preprocessing_config())
        self.text_fingerprint = self._fingerprint(("text_model.", "text_projection."), "")

    def _preprocessing_config(self) -> str:
        config = self.image_processor.to_dict()
        return json.dumps({k: config.get(k) for k in _PREPROCESSING_KEYS}, sort_keys=True, default=str)

    def _fingerprint(self, prefixes: tuple[str, ...], extra: str) -> str:
        digest = hashlib.sha256(f"hf-clip|{extra}|{self.dtype}".encode())
        files = [f for f in list_weight_files(self.path) if f.suffix == ".safetensors"]
        if not files or not hash_safetensors(files, prefixes, digest):
            named = [(n, p) for n, p in self.model.state_dict().items() if n.startswith(prefixes)]
            hash_tensors(named, digest, sample=1024)
        return short(digest)

    @torch.inference_mode()
    def encode_images(self, frames: FrameBatch, batch_size: int = 32) -> Tensor:
        """CLIP ``get_image_features`` (projected, not normalised): float32 ``[T, D]`` on CPU."""
        return encode_in_batches(frames, batch_size, self.feature_dim, self._encode_image_batch, "CLIP frames")

    def _encode_image_batch(self, batch: np.ndarray | list[Any]) -> Tensor:
        pixels = self.pixels(batch)
        return pooled_features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype)))

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> Tensor:
        """CLIP ``get_text_features`` (truncated at 77 tokens): float32 ``[N, D]`` on CPU."""
        if not texts:
            raise InputError("no text to encode")
        tokens = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_text_tokens, padding=True, return_tensors="pt"
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return pooled_features(self.model.get_text_features(**tokens)).float().cpu()
