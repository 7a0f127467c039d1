"""Validation and batching of frame inputs: uint8 ``[T, H, W, 3]`` arrays/tensors or PIL images."""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from tspo_eval.errors import InputError


def as_frame_list(frames: Any) -> list[Any]:
    """Frames as a list of uint8 ``[H, W, 3]`` ndarrays or RGB PIL images (no pixel copies for arrays).

    Raises:
        InputError: wrong type, dtype, rank or channel count.
    """
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be [T, H, W, 3], got shape {tuple(frames.shape)}")
        if frames.dtype != np.uint8:
            raise InputError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
        return list(frames)
    if isinstance(frames, Sequence) and not isinstance(frames, (str, bytes)):
        out = []
        for i, frame in enumerate(frames):
            if hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image
                out.append(frame if frame.mode == "RGB" else frame.convert("RGB"))
            elif isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8:
                out.append(frame)
            else:
                raise InputError(f"frame {i}: expected a PIL image or a uint8 [H, W, 3] array, got {type(frame).__name__}")
        return out
    raise InputError(f"frames must be a uint8 [T, H, W, 3] array/tensor or a list of PIL images, got {type(frames).__name__}")


def iter_batches(items: Sequence[Any], batch_size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``batch_size``."""
    if batch_size <= 0:
        raise InputError(f"batch size must be positive, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def encode_in_batches(
    frames: Any, batch_size: int, feature_dim: int, encode_batch: Callable[[Any], torch.Tensor], desc: str
) -> torch.Tensor:
    """Validate ``frames``, run ``encode_batch`` on consecutive batches and concatenate: float32 ``[T, D]`` on CPU.

    An array (or tensor) of frames reaches ``encode_batch`` as uint8 ``[n, H, W, 3]`` slices of
    itself, a list as sub-lists.  A progress bar (``desc``) shows on a terminal when there are at
    least 4 batches.
    """
    from tqdm.auto import tqdm

    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    items = as_frame_list(frames)
    if not items:
        return torch.empty(0, feature_dim)
    if isinstance(frames, np.ndarray):
        items = frames  # validated above; its slices are views
    n_batches = (len(items) + batch_size - 1) // batch_size
    out = []
    with tqdm(total=len(items), desc=desc, unit="frame", leave=False,
              disable=n_batches < 4 or not sys.stderr.isatty()) as bar:
        for batch in iter_batches(items, batch_size):
            out.append(encode_batch(batch).float().cpu())
            bar.update(len(batch))
    return torch.cat(out)
