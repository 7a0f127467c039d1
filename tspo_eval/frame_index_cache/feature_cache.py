"""On-disk cache of CLIP frame features: one safetensors file per (video content, candidate grid,
encoder), shared by every question on that video."""
from __future__ import annotations

import hashlib
import json
import os
import struct
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
_KEY_PARTS = ("video_fingerprint", "candidate_stride", "num_candidates", "encoder_fingerprint")


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
    """Frame features [T, D] (D = 768 for TSPO) keyed by :meth:`key`, in ``root``.

    Each entry is ``<key>.safetensors`` with one float32 tensor and string metadata: the format
    version, the key and its four parts, the shape and a SHA-256 of the values.  Writes go to a
    temporary file in ``root`` and are moved into place with ``os.replace``, so readers never
    see half a file and several processes may write the same key at once (the last complete
    file wins; all are equal).  :meth:`load` checks everything and treats a bad entry as a miss.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # -- keys ------------------------------------------------------------------------------
    @staticmethod
    def key(video_fp: str, stride: int, n_candidates: int, encoder_fp: str) -> str:
        """40 hex characters identifying (video content, grid stride, grid length, encoder)."""
        text = f"tspo-features/{FORMAT_VERSION}|{video_fp}|{int(stride)}|{int(n_candidates)}|{encoder_fp}"
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    @staticmethod
    def key_metadata(video_fp: str, stride: int, n_candidates: int, encoder_fp: str) -> dict[str, str]:
        """The key parts as the string metadata :meth:`save` stores (and :meth:`load` checks)."""
        return {
            "video_fingerprint": str(video_fp),
            "candidate_stride": str(int(stride)),
            "num_candidates": str(int(n_candidates)),
            "encoder_fingerprint": str(encoder_fp),
        }

    def path_for(self, key: str) -> Path:
        if not key or any(c in key for c in "/\\") or key.startswith("."):
            raise ValueError(f"invalid cache key {key!r}")
        return self.root / f"{key}{SUFFIX}"

    # -- read ------------------------------------------------------------------------------
    def load(self, key: str) -> Tensor | None:
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

    def _decode(self, key: str, data: bytes) -> Tensor:
        import torch
        from safetensors.torch import load as load_bytes

        header = _read_header(data)
        meta = header.get("__metadata__") or {}
        if meta.get("format_version") != FORMAT_VERSION:
            raise CacheEntryError(f"stale format version {meta.get('format_version')!r} (expected {FORMAT_VERSION})")
        if meta.get("key") != key:
            raise CacheEntryError(f"entry records key {meta.get('key')!r}")
        try:
            parts = [meta[name] for name in _KEY_PARTS]
            recomputed = self.key(parts[0], int(parts[1]), int(parts[2]), parts[3])
            n_candidates, dim = int(parts[2]), int(meta["feature_dim"])
        except (KeyError, ValueError) as exc:
            raise CacheEntryError(f"incomplete metadata ({exc})") from None
        if recomputed != key:
            raise CacheEntryError("metadata key parts do not match the key (edited or stale entry)")
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
    def save(self, key: str, features: Tensor, metadata: dict[str, str]) -> None:
        """Store float32 [T, D] ``features`` under ``key`` atomically.

        ``metadata`` must hold the key parts (see :meth:`key_metadata`); other string entries
        (e.g. the video path) are stored for information.  Failures to write are logged, not
        raised: the cache is an optimisation.
        """
        import torch
        from safetensors.torch import save as save_bytes

        features = features.detach().to("cpu", torch.float32).contiguous()
        if features.ndim != 2:
            raise ValueError(f"features must be [T, D], got shape {tuple(features.shape)}")
        meta = {str(k): str(v) for k, v in metadata.items()}
        missing = [name for name in _KEY_PARTS if name not in meta]
        if missing:
            raise ValueError(f"cache metadata lacks the key parts {missing}")
        if self.key(meta[_KEY_PARTS[0]], int(meta[_KEY_PARTS[1]]), int(meta[_KEY_PARTS[2]]), meta[_KEY_PARTS[3]]) != key:
            raise ValueError("cache metadata does not match the key")
        if int(meta["num_candidates"]) != features.shape[0]:
            raise ValueError(f"{features.shape[0]} feature rows for {meta['num_candidates']} candidates")
        meta.update(
            format_version=FORMAT_VERSION,
            key=key,
            feature_dim=str(features.shape[1]),
            shape=json.dumps(list(features.shape)),
            dtype="float32",
            sha256=_digest(features),
        )
        payload = save_bytes({_TENSOR: features}, metadata=meta)
        path = self.path_for(key)
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
