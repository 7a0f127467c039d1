"""The TSPO temporal agent: frozen CLIP + the selector head, loaded from TSPO-0.4B or a training checkpoint."""
from __future__ import annotations

import hashlib
import os

import torch
from loguru import logger
from torch import Tensor, nn

from tspo_eval.agent.checkpoint import (
    is_clip_folder,
    load_selector_state,
    resolve_checkpoint,
)
from tspo_eval.agent.clip_encoder import HFClipEncoder
from tspo_eval.agent.devices import resolve_device, resolve_dtype
from tspo_eval.agent.fingerprint import hash_tensors, short
from tspo_eval.agent.scorer import FrameBatch
from tspo_eval.agent.selection import select_positions
from tspo_eval.agent.selector_head import EmbeddingCache, SelectorHead
from tspo_eval.agent.text import question_stem
from tspo_eval.errors import CheckpointError, InputError
from tspo_eval.selector_options import DEFAULT_AGENT

#: the CLIP TSPO was trained on; used for training checkpoints that do not carry one
DEFAULT_CLIP = "openai/clip-vit-large-patch14"


class TemporalAgent(nn.Module):
    """Query-aware frame scorer of TSPO (a :class:`~tspo_eval.agent.scorer.Scorer`).

    Attributes:
        device, dtype: where/how the CLIP towers run (the head always computes in float32).
        name: ``"tspo"``.
        fingerprint: selector weights + CLIP (both towers, preprocessing, dtype).
        encoder_fingerprint: CLIP image tower + image preprocessing + dtype (feature-cache key).
    """

    name = "tspo"

    def __init__(self, clip: HFClipEncoder, head: SelectorHead, source: str = "") -> None:
        super().__init__()
        self.clip, self.head, self.source = clip, head, source
        self.device, self.dtype = clip.device, clip.dtype
        if clip.feature_dim != head.dim:
            raise CheckpointError(source, f"CLIP projection dim {clip.feature_dim} != selector dim {head.dim}")
        digest = hashlib.sha256(f"tspo|{clip.encoder_fingerprint}|{clip.text_fingerprint}".encode())
        hash_tensors(head.state_dict().items(), digest)
        self.fingerprint = short(digest)
        self.encoder_fingerprint = clip.encoder_fingerprint
        self._embeddings = EmbeddingCache(head)  # F_e of the last video: later questions skip the head's products

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike = DEFAULT_AGENT,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        clip_path: str | os.PathLike | None = None,
    ) -> "TemporalAgent":
        """Load the agent from a TSPO-0.4B folder/hub id, or a training checkpoint (+ ``clip_path``).

        The CLIP comes from ``clip_path`` when given, else from the checkpoint folder when it is a
        CLIP ``save_pretrained`` folder, else :data:`DEFAULT_CLIP`.

        Raises:
            CheckpointError: missing path, no/incomplete selector weights, wrong shapes, bad CLIP.
        """
        resolved_device = resolve_device(device)
        resolved_dtype = resolve_dtype(dtype, resolved_device)
        checkpoint = resolve_checkpoint(path_or_hub_id)
        head = SelectorHead()
        expected = {name: tuple(p.shape) for name, p in head.state_dict().items()}
        state, prefix = load_selector_state(checkpoint, expected)
        head.load_state_dict(state)
        if clip_path is not None:
            clip_dir = resolve_checkpoint(clip_path)
        elif is_clip_folder(checkpoint):
            clip_dir = checkpoint
        else:
            logger.info("checkpoint {} carries no CLIP; using {}", path_or_hub_id, DEFAULT_CLIP)
            clip_dir = resolve_checkpoint(DEFAULT_CLIP)
        if not is_clip_folder(clip_dir):
            raise CheckpointError(clip_dir, "not a CLIP save_pretrained folder (config.json with model_type 'clip')")
        clip = HFClipEncoder(clip_dir, resolved_device, resolved_dtype)
        agent = cls(clip, head.to(resolved_device).eval().requires_grad_(False), source=os.fspath(path_or_hub_id))
        logger.info(
            "loaded TSPO agent {} ({} keys '{}*', CLIP {}) on {} {}",
            path_or_hub_id, len(state), prefix, clip_dir, resolved_device, resolved_dtype,
        )
        return agent

    def encode_frames(self, frames: FrameBatch, batch_size: int = 32) -> Tensor:
        """Projected CLIP image features ``F_f``: float32 ``[T, 768]`` on CPU.

        ``frames``: uint8 ``[T, H, W, 3]`` ndarray/tensor (RGB) or a list of PIL images.
        """
        return self.clip.encode_images(frames, batch_size)

    def encode_text(self, question: str) -> Tensor:
        """CLIP text features ``F_t`` of the question stem: float32 ``[1, 768]`` on CPU.

        Raises:
            InputError: empty or blank question.
        """
        return self.clip.encode_texts([question_stem(question)])

    @torch.inference_mode()
    def score(self, frame_features: Tensor, text_features: Tensor) -> Tensor:
        """Logits ``S / tau``: float32 ``[T]`` on CPU for ``F_f`` ``[T, 768]`` and ``F_t`` ``[1, 768]``."""
        if frame_features.ndim != 2 or frame_features.shape[0] == 0:
            raise InputError(f"no candidate frames to score (frame features of shape {tuple(frame_features.shape)})")
        try:
            f_f = self.head.prepare(frame_features)
            return self.head.logits(self._embeddings(f_f), f_f, text_features).cpu()
        except ValueError as exc:
            raise InputError(str(exc)) from exc

    def select(self, scores: Tensor, num_frames: int = 64, strategy: str = "topk") -> Tensor:
        """Candidate positions (int64, temporal order) chosen by ``strategy``; see :mod:`.selection`."""
        return select_positions(scores, num_frames, strategy)

    def extra_repr(self) -> str:
        return f"source={self.source!r}, device={self.device}, dtype={self.dtype}, fingerprint={self.fingerprint}"
