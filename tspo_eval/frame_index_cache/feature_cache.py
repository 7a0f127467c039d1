"""On-disk cache of CLIP frame features: one safetensors file per (video content, candidate grid,
encoder, decoder), shared by every question on that video.

A :class:`CacheKey` names an entry; the entry's file name is ``CacheKey.digest`` and its metadata
is derived from the key (:meth:`CacheKey.metadata`), so callers build the key once:
``cache.load(key)`` / ``cache.save(key, features)``.
"""
from __future__ import annotations

import hashlib
import json
import numbers
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from tspo_eval.atomic_files import TEMP_SUFFIX, atomic_write

if TYPE_CHECKING:  # torch loads on first load/save, so `tspo-eval cache info` stays fast
    from torch import Tensor

#: bump when the file layout or the meaning of a key part changes: older entries become stale.
FORMAT_VERSION = "1"
ENV_VAR = "TSPO_EVAL_CACHE_DIR"
SUFFIX = ".safetensors"
_TENSOR = "features"
#: the key parts as named in an entry's metadata (on-disk names, unchanged since format version 1)
_KEY_PARTS = ("video_fingerprint", "candidate_stride", "num_candidates", "encoder_fingerprint")
#: metadata names :meth:`FeatureCache.save` writes itself (besides the key parts)
_DERIVED = ("format_version", "key", "feature_dim", "shape", "dtype", "sha256")


@dataclass(frozen=True, kw_only=True)
class CacheKey:
    """What a cached ``[T, D]`` feature tensor depends on.

    Attributes:
        video_fingerprint: content fingerprint of the video file (:func:`tspo_eval.video.video_fingerprint`).
        candidate_stride: source frames between two candidates (``round(avg_fps / fps)``).
        num_candidates: ``T``, the length of the candidate grid.
        encoder_fingerprint: the scorer's image-encoder fingerprint (tower + preprocessing + dtype).
        decoder: the backend that really decoded the pixels (``decord``, ``pyav``, ``torchcodec``;
            with ``auto`` the one that did): one decoder's features never serve another.

    On disk (format version 1) the encoder and decoder form one key part,
    ``"<encoder_fingerprint>|decoder=<decoder>"`` (:attr:`encoder_part`), stored under the name
    ``encoder_fingerprint``.
    """

    video_fingerprint: str
    candidate_stride: int
    num_candidates: int
    encoder_fingerprint: str
    decoder: str

    def __post_init__(self) -> None:
        for name in ("video_fingerprint", "encoder_fingerprint", "decoder"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"cache key part {name} must be a non-empty string, got {value!r}")
        for name, least in (("candidate_stride", 1), ("num_candidates", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(f"cache key part {name} must be an integer >= {least}, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers -> int (hashing, repr)

    @property
    def encoder_part(self) -> str:
        """The encoder key part as stored: ``"<encoder_fingerprint>|decoder=<decoder>"``."""
        return f"{self.encoder_fingerprint}|decoder={self.decoder}"

    @property
    def digest(self) -> str:
        """40 hex characters: the entry's file name (without :data:`SUFFIX`)."""
        text = (f"tspo-features/{FORMAT_VERSION}|{self.video_fingerprint}|{self.candidate_stride}|"
                f"{self.num_candidates}|{self.encoder_part}")
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def metadata(self) -> dict[str, str]:
        """The key parts as the string metadata an entry stores (and :meth:`FeatureCache.load` checks)."""
        return {
            "video_fingerprint": self.video_fingerprint,
            "candidate_stride": str(self.candidate_stride),
            "num_candidates": str(self.num_candidates),
            "encoder_fingerprint": self.encoder_part,
        }


class CacheEntryError(Exception):
    """An entry that must not be used (internal; :meth:`FeatureCache.load` turns it into a miss)."""


def default_cache_root() -> Path:
    """``$TSPO_EVAL_CACHE_DIR`` when set, else the platform's user cache dir ``tspo-eval/features``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tspo-eval")) / "features"


def _digest(features: Tensor) -> str:
    return hashlib.sha256(features.contiguous().numpy().tobytes()).hexdigest()


def _read_header(data: bytes) -> dict:
    """The JSON header of a safetensors file (validates the length prefix)."""
    if len(data) < 8:
        raise CacheEntryError(f"file too short ({len(data)} bytes)")
    (length,) = struct.unpack("<Q", data[:8])
    if length <= 0 or 8 + length > len(data):
        raise CacheEntryError(f"header length {length} does not fit a {len(data)}-byte file (truncated?)")
    try:
        return json.loads(data[8 : 8 + length])
    except ValueError as exc:
        raise CacheEntryError(f"unreadable header ({exc})") from None


class FeatureCache:
    """Frame features [T, D] (D = 768 for TSPO) keyed by a :class:`CacheKey`, in ``root``.

    Each entry is ``<key.digest>.safetensors`` with one float32 tensor and string metadata: the
    format version, the digest and the key's four stored parts, the shape and a SHA-256 of the
    values.  Writes go to a temporary file in ``root`` and are moved into place with
    ``os.replace``, so readers never see half a file and several processes may write the same
    key at once (the last complete file wins; all are equal).  :meth:`load` checks everything and
    treats a bad entry as a miss.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # -- keys ------------------------------------------------------------------------------
    def path_for(self, key: CacheKey) -> Path:
        """The entry file of ``key``: ``<root>/<key.digest>.safetensors``."""
        if not isinstance(key, CacheKey):
            raise TypeError(f"feature cache keys are CacheKey objects, got {type(key).__name__} {key!r}")
        return self.root / f"{key.digest}{SUFFIX}"

    # -- read ------------------------------------------------------------------------------
    def load(self, key: CacheKey) -> Tensor | None:
        """Features float32 [T, D] stored under ``key``; None on a miss.

        A corrupt, truncated, stale (other format version) or inconsistent entry (metadata not
        matching the key, wrong shape, non-finite values, checksum mismatch) is logged, removed
        and reported as a miss so the caller recomputes it.
        """
        path = self.path_for(key)
        try:
            stat = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("feature cache: cannot read {} ({}); recomputing", path, exc)
            return None
        try:
            return self._decode(key, data)
        except CacheEntryError as exc:
            logger.warning("feature cache: discarding bad entry {}: {}; it will be recomputed", path, exc)
            self._remove_if_unchanged(path, stat)
            return None

    def _decode(self, key: CacheKey, data: bytes) -> Tensor:
        import torch
        from safetensors.torch import load as load_bytes

        header = _read_header(data)
        meta = header.get("__metadata__") or {}
        if meta.get("format_version") != FORMAT_VERSION:
            raise CacheEntryError(f"stale format version {meta.get('format_version')!r} (expected {FORMAT_VERSION})")
        if meta.get("key") != key.digest:
            raise CacheEntryError(f"entry records key {meta.get('key')!r}")
        if any(meta.get(name) != value for name, value in key.metadata().items()):
            raise CacheEntryError("metadata key parts do not match the key (edited or stale entry)")
        try:
            n_candidates, dim = key.num_candidates, int(meta["feature_dim"])
        except (KeyError, ValueError) as exc:
            raise CacheEntryError(f"incomplete metadata ({exc})") from None
        try:
            tensors = load_bytes(data)
        except Exception as exc:  # safetensors raises SafetensorError / ValueError on bad bytes
            raise CacheEntryError(f"unreadable tensor data ({exc})") from None
        features = tensors.get(_TENSOR)
        if features is None:
            raise CacheEntryError(f"no {_TENSOR!r} tensor")
        if features.dtype != torch.float32 or tuple(features.shape) != (n_candidates, dim):
            raise CacheEntryError(f"shape {tuple(features.shape)} {features.dtype}, expected ({n_candidates}, {dim}) float32")
        if not torch.isfinite(features).all():
            raise CacheEntryError("non-finite values")
        if meta.get("sha256") != _digest(features):
            raise CacheEntryError("checksum mismatch (corrupt values)")
        return features

    @staticmethod
    def _remove_if_unchanged(path: Path, stat: os.stat_result) -> None:
        """Delete ``path`` unless another process replaced it since we read it."""
        try:
            now = path.stat()
            if (now.st_ino, now.st_mtime_ns, now.st_size) == (stat.st_ino, stat.st_mtime_ns, stat.st_size):
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("feature cache: cannot remove {} ({})", path, exc)

    # -- write -----------------------------------------------------------------------------
    def save(self, key: CacheKey, features: Tensor, *, extra: Mapping[str, str] | None = None) -> None:
        """Store float32 [T, D] ``features`` under ``key`` atomically.

        The entry's metadata is the key's (:meth:`CacheKey.metadata`) plus ``extra`` string
        entries stored for information only (e.g. the video's file name). Failures to write are
        logged, not raised: the cache is an optimisation.

        Raises:
            ValueError: ``features`` not ``[T, D]`` with ``T == key.num_candidates``, or ``extra``
                naming a key part or a derived entry.
        """
        import torch
        from safetensors.torch import save as save_bytes

        path = self.path_for(key)
        features = features.detach().to("cpu", torch.float32).contiguous()
        if features.ndim != 2:
            raise ValueError(f"features must be [T, D], got shape {tuple(features.shape)}")
        if features.shape[0] != key.num_candidates:
            raise ValueError(f"{features.shape[0]} feature rows for {key.num_candidates} candidates")
        info = {str(k): str(v) for k, v in (extra or {}).items()}
        reserved = sorted(set(info) & {*_KEY_PARTS, *_DERIVED})
        if reserved:
            raise ValueError(f"extra cache metadata may not replace the key parts or derived entries {reserved}")
        meta = {**key.metadata(), **info}
        meta.update(
            format_version=FORMAT_VERSION,
            key=key.digest,
            feature_dim=str(features.shape[1]),
            shape=json.dumps(list(features.shape)),
            dtype="float32",
            sha256=_digest(features),
        )
        payload = save_bytes({_TENSOR: features}, metadata=meta)
        try:
            atomic_write(path, payload)
        except OSError as exc:
            logger.warning("feature cache: cannot write {} ({}); continuing without caching", path, exc)

    # -- maintenance -----------------------------------------------------------------------
    def entries(self) -> list[Path]:
        """Entry files, sorted by name."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(f"*{SUFFIX}") if p.is_file())

    def info(self) -> dict:
        """``{"root": str, "entries": int, "bytes": int}``."""
        files = self.entries()
        total = 0
        for p in files:
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
        return {"root": str(self.root), "entries": len(files), "bytes": total}

    def clear(self) -> int:
        """Remove every entry (and leftover temporary files); returns the number of entries removed."""
        removed = 0
        for p in self.entries():
            try:
                p.unlink()
                removed += 1
            except FileNotFoundError:
                pass
        if self.root.is_dir():
            for tmp in self.root.glob(f".*{TEMP_SUFFIX}"):
                try:
                    tmp.unlink()
                except OSError:
                    pass
        return removed
