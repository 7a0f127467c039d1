"""Frame size for the Qwen-VL families under qwen-vl-utils' video budget.

The built-in lmms-eval Qwen models resize a K-frame video so that every frame has the same size,
a multiple of ``patch_size * merge_size``, with at least ``min_pixels`` and at most
``min(max_pixels, 768 merged tokens, total_pixels * temporal_patch / K)`` pixels per frame.
The rounding itself is transformers' own ``smart_resize``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

VIDEO_FRAME_MAX_TOKENS = 768  # qwen-vl-utils: per-frame cap for videos, in merged tokens
DEFAULT_MIN_PIXELS = 256 * 28 * 28
DEFAULT_MAX_PIXELS = 1605632
DEFAULT_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)  # qwen-vl-utils' default video budget


def frame_size(num_frames: int, height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int,
               total_pixels: int, temporal_patch: int = 2) -> tuple[int, int]:
    """Per-frame (h, w) for a K-frame video under qwen-vl-utils' video budget rules."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    cap = min(VIDEO_FRAME_MAX_TOKENS * factor * factor, total_pixels / max(num_frames, 1) * temporal_patch)
    per_frame = min(max_pixels, max(cap, int(min_pixels * 1.05)))
    return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=int(per_frame))


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 [K,H,W,3] -> uint8 [K,3,h,w], bicubic with antialiasing (as qwen-vl-utils)."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    out = torch.nn.functional.interpolate(video.float(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def budget_frames(processor: Any, frames: np.ndarray, *, min_pixels: int, max_pixels: int,
                  total_pixels: int) -> torch.Tensor:
    """Frames uint8 [K,H,W,3] resized for ``processor``'s patch grid under the video budget -> uint8 [K,3,h,w]."""
    vp = getattr(processor, "video_processor", None) or processor.image_processor
    factor = int(getattr(vp, "patch_size", 14)) * int(getattr(vp, "merge_size", 2))
    size = frame_size(len(frames), frames.shape[1], frames.shape[2], factor=factor, min_pixels=min_pixels,
                      max_pixels=max_pixels, total_pixels=total_pixels,
                      temporal_patch=int(getattr(vp, "temporal_patch_size", 2)))
    return resize_frames(frames, size)
