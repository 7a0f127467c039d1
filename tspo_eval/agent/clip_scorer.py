"""Training-free baseline scorer: raw CLIP cosine similarity between each frame and the question stem."""
from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from tspo_eval.agent.checkpoint import is_clip_folder, resolve_checkpoint
from tspo_eval.agent.clip_encoder import HFClipEncoder
from tspo_eval.agent.devices import resolve_device, resolve_dtype
from tspo_eval.agent.fingerprint import short
from tspo_eval.agent.open_clip_encoder import OPEN_CLIP_PREFIX, OpenClipEncoder
from tspo_eval.agent.scorer import FrameBatch
from tspo_eval.agent.selection import select_positions
from tspo_eval.agent.text import question_stem
from tspo_eval.errors import CheckpointError, InputError

if TYPE_CHECKING:
    from tspo_eval.agent.temporal_agent import TemporalAgent

Encoder = Union[HFClipEncoder, OpenClipEncoder]


class ClipScorer:
    """A :class:`~tspo_eval.agent.scorer.Scorer` like :class:`TemporalAgent`; ``score`` is
    ``cos(F_f[t], F_t)``, ``[T]``.

    Features have the CLIP's own dimension (768 for CLIP-L/14 and TSPO, 512 for ViT-B-32, ...).
    """

    name = "clip"

    def __init__(self, encoder: Encoder, source: str) -> None:
        self.encoder, self.source = encoder, source
        self.device, self.dtype = encoder.device, encoder.dtype
        self.encoder_fingerprint = encoder.encoder_fingerprint
        self.fingerprint = short(hashlib.sha256(f"clip|{encoder.encoder_fingerprint}|{encoder.text_fingerprint}".encode()))

    @classmethod
    def from_agent(cls, agent: TemporalAgent) -> "ClipScorer":
        """Reuse a loaded :class:`TemporalAgent`'s CLIP (no reload; shares its feature cache entries)."""
        return cls(agent.clip, source=f"{agent.source} (CLIP only)")

    @classmethod
    def from_spec(
        cls, spec: str | os.PathLike, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> "ClipScorer":
        """``open_clip:ARCH/PRETRAINED_TAG_OR_FILE``, or a Hugging Face CLIP folder / hub id (TSPO-0.4B works too)."""
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        text = os.fspath(spec)
        if text.startswith(OPEN_CLIP_PREFIX):
            return cls(OpenClipEncoder(text, resolved_device, resolved_dtype), source=text)
        folder = resolve_checkpoint(text)
        if not is_clip_folder(folder):
            raise CheckpointError(text, "not a CLIP save_pretrained folder (config.json with model_type 'clip')")
        return cls(HFClipEncoder(folder, resolved_device, resolved_dtype), source=text)

    def encode_frames(self, frames: FrameBatch, batch_size: int = 32) -> Tensor:
        """CLIP image features, float32 ``[T, D]`` on CPU."""
        return self.encoder.encode_images(frames, batch_size)

    def encode_text(self, question: str) -> Tensor:
        """CLIP text features of the question stem, float32 ``[1, D]``; InputError on an empty question."""
        return self.encoder.encode_texts([question_stem(question)])

    @torch.inference_mode()
    def score(self, frame_features: Tensor, text_features: Tensor) -> Tensor:
        """Cosine similarity of each frame with the text, float32 ``[T]`` on CPU."""
        if frame_features.ndim != 2 or frame_features.shape[0] == 0:
            raise InputError(f"no candidate frames to score (frame features of shape {tuple(frame_features.shape)})")
        f_t = text_features.float().reshape(1, -1)
        if f_t.shape[1] != frame_features.shape[1]:
            raise InputError(f"feature sizes differ: frames {frame_features.shape[1]}, text {f_t.shape[1]}")
        return F.cosine_similarity(frame_features.float(), f_t, dim=-1).cpu()

    def select(self, scores: Tensor, num_frames: int = 64, strategy: str = "topk") -> Tensor:
        """Candidate positions (int64, temporal order) chosen by ``strategy``."""
        return select_positions(scores, num_frames, strategy)
