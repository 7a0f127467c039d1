"""An open_clip_torch model behind the same interface as :class:`HFClipEncoder`.

Spec: ``open_clip:ARCH/PRETRAINED_TAG_OR_FILE`` (e.g. ``open_clip:ViT-B-32/laion2b_s34b_b79k`` or
``open_clip:ViT-B-32//data/ckpt.pt``), or ``open_clip:hf-hub:org/repo`` / ``open_clip:local-dir:/path``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from tspo_eval.agent.fingerprint import hash_safetensors, short
from tspo_eval.agent.frames import encode_in_batches
from tspo_eval.agent.scorer import FrameBatch
from tspo_eval.errors import CheckpointError, InputError

OPEN_CLIP_PREFIX = "open_clip:"
_PRECISION = {torch.float32: "fp32", torch.bfloat16: "pure_bf16", torch.float16: "pure_fp16"}


def parse_open_clip_spec(spec: str) -> tuple[str, str | None]:
    """``open_clip:ARCH/TAG_OR_FILE`` -> ``(model_name, pretrained)``; schema names keep ``pretrained=None``."""
    body = spec[len(OPEN_CLIP_PREFIX):] if spec.startswith(OPEN_CLIP_PREFIX) else spec
    if body.startswith(("hf-hub:", "local-dir:")):
        return body, None
    arch, _, pretrained = body.partition("/")
    if not arch or not pretrained:
        raise InputError(f"bad open_clip model {spec!r}: expected open_clip:ARCH/PRETRAINED_TAG_OR_FILE")
    return arch, pretrained


def _file_sample_hash(path: Path, digest: "hashlib._Hash", samples: int = 64, size: int = 4096) -> None:
    """Size + evenly spaced byte samples of a whole file (for non-safetensors weights)."""
    total = path.stat().st_size
    digest.update(str(total).encode())
    with open(path, "rb") as handle:
        for i in range(samples):
            handle.seek(total * i // samples)
            digest.update(handle.read(size))


class OpenClipEncoder:
    """open_clip image/text towers; features float32 on CPU; same attributes as :class:`HFClipEncoder`."""

    def __init__(self, spec: str, device: torch.device, dtype: torch.dtype) -> None:
        import open_clip

        self.spec, self.device, self.dtype = spec, device, dtype
        model_name, pretrained = parse_open_clip_spec(spec)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, precision=_PRECISION.get(dtype, "fp32"), device=device
            )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # unknown arch, offline download, bad file: all surface as RuntimeError/OSError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(spec, f"cannot load open_clip model ({reason})") from exc
        self.model = model.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.feature_dim = int(getattr(model, "embed_dim", 0) or self._probe_dim())
        self.path = Path(pretrained) if pretrained and os.path.isfile(pretrained) else None
        self.encoder_fingerprint = self._fingerprint(("visual.",), repr(preprocess))
        self.text_fingerprint = self._fingerprint(("transformer.", "token_embedding", "text", "ln_final"), "text")

    def _probe_dim(self) -> int:
        with torch.inference_mode():
            return int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])

    def _fingerprint(self, prefixes: tuple[str, ...], extra: str) -> str:
        model_name, pretrained = parse_open_clip_spec(self.spec)
        digest = hashlib.sha256(f"open_clip|{model_name}|{extra}|{self.dtype}".encode())
        if self.path is None:
            digest.update(str(pretrained).encode())  # a published tag names fixed weights
        elif self.path.suffix != ".safetensors" or not hash_safetensors([self.path], prefixes, digest):
            _file_sample_hash(self.path, digest)
        return short(digest)

    @torch.inference_mode()
    def encode_images(self, frames: FrameBatch, batch_size: int = 32) -> Tensor:
        """``encode_image`` (not normalised): float32 ``[T, D]`` on CPU."""
        return encode_in_batches(frames, batch_size, self.feature_dim, self._encode_image_batch, "open_clip frames")

    def _encode_image_batch(self, batch: list[Any]) -> Tensor:
        images = [Image.fromarray(f) if isinstance(f, np.ndarray) else f for f in batch]
        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, self.dtype)
        return self.model.encode_image(pixels)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> Tensor:
        """``encode_text`` of the tokenised texts (open_clip truncates to its context length): ``[N, D]``."""
        if not texts:
            raise InputError("no text to encode")
        return self.model.encode_text(self.tokenizer(list(texts)).to(self.device)).float().cpu()
