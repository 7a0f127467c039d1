"""Decoded candidate frames on disk, so training decodes each video once, not once per prompt and epoch.

A :class:`DecodedFrameStore` keeps, per video, ALL its candidate frames (the 1 fps grid of
:attr:`tspo_eval.training.data.Candidates.frames`, the frame numbers the feature cache uses),
decoded in one forward pass, area-downscaled to at most ``max_pixels`` pixels per frame (aspect
kept; 0 = native size) and stored as one uint8 ``[T, H, W, 3]`` ``.npy`` file, read back as a
memory map.  Disk use: ``T x H x W x 3`` bytes per video.

The files live in ``<feature cache folder>/decoded_frames/``; a file's name is the digest of a
:class:`~tspo_eval.frame_index_cache.CacheKey` (the video's content fingerprint, the grid, fps,
decoder and ``max_pixels``), so an edited video gets a new file.  Writes go through
:func:`tspo_eval.atomic_files.atomic_output`: the ranks of a job share the folder safely.  A
truncated or malformed file is found when it is opened and decoded again (one WARNING naming the
video).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from loguru import logger

from tspo_eval.atomic_files import atomic_output
from tspo_eval.frame_index_cache import CacheKey, FeatureCache

#: the store's folder inside the feature cache's folder
STORE_FOLDER = "decoded_frames"
#: Qwen2.5-VL's per-frame video budget (768 patches of 28 x 28 pixels)
DEFAULT_FRAME_PIXELS = 768 * 28 * 28
#: bump when the file layout or the downscaling changes: older files are no longer found
FORMAT_VERSION = "1"
SUFFIX = ".npy"


def scaled_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) of a ``height x width`` frame shrunk to at most ``max_pixels`` pixels, aspect kept.

    Unchanged when the frame already fits or ``max_pixels`` is 0 (native size).
    """
    if max_pixels <= 0 or height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    h = max(1, math.floor(height * scale))
    w = max(1, min(math.floor(width * scale), max_pixels // h))  # floors keep h * w <= max_pixels; min: a
    return min(h, max_pixels // w), w                               # 1-pixel side or float rounding


def fit_pixels(frames: np.ndarray, max_pixels: int) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> ``[N, h, w, 3]``, area-filtered (PIL BOX) to at most ``max_pixels``
    pixels per frame; the input itself when it already fits."""
    n, height, width = frames.shape[:3]
    h, w = scaled_size(height, width, max_pixels)
    if (h, w) == (height, width):
        return frames
    from PIL import Image

    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        out[i] = np.asarray(Image.fromarray(frames[i]).resize((w, h), Image.BOX))
    return out


def _grid_digest(grid: np.ndarray) -> str:
    return hashlib.sha256(grid.tobytes()).hexdigest()[:16]


class StoreFileError(Exception):
    """A store file that must not be used (internal: it is decoded again)."""


class StoreWriteError(Exception):
    """The store folder cannot take a file (full disk, no permission): frames are decoded per prompt."""


class DecodedFrameStore:
    """Every candidate frame of each video, decoded once, on disk as uint8 ``[T, H, W, 3]``.

    Args:
        root: the folder of the ``.npy`` files (see :meth:`for_cache`).
        decoder: the backend that decodes (``auto``, ``pyav``, ...), as the trainer's ``--decoder``.
        fps: the candidate rate of the grids (part of a file's key).
        max_pixels: pixels per stored frame at most (area downscale, aspect kept); 0 = native size.
        grid_of: ``video -> int64 [T]`` candidate grid, used by :meth:`source_frames`.
        max_open: memory maps kept open (least recently used closed first).
        chunk_size: frames decoded at a time while filling (bounds memory).
    """

    def __init__(self, root: str | os.PathLike, *, decoder: str = "auto", fps: float = 1.0,
                 max_pixels: int = DEFAULT_FRAME_PIXELS, grid_of: Callable[[str], np.ndarray] | None = None,
                 max_open: int = 64, chunk_size: int = 32) -> None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 0:
            raise ValueError(f"max_pixels must be an integer >= 0, got {max_pixels!r}")
        self.root = Path(root).expanduser()
        self.decoder, self.fps, self.max_pixels = str(decoder).lower(), float(fps), int(max_pixels)
        self.grid_of, self.max_open, self.chunk_size = grid_of, max(1, int(max_open)), int(chunk_size)
        self.fills = 0  #: videos decoded into the store by this object
        self._open: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._fingerprints: dict[tuple, str] = {}
        self._unwritable: set[str] = set()

    @classmethod
    def for_cache(cls, cache: FeatureCache, **kwargs) -> DecodedFrameStore:
        """The store in ``<cache.root>/decoded_frames`` (``kwargs`` as for the constructor)."""
        return cls(cache.root / STORE_FOLDER, **kwargs)

    def __repr__(self) -> str:
        return f"DecodedFrameStore({str(self.root)!r}, decoder={self.decoder!r}, max_pixels={self.max_pixels})"

    # -- keys ------------------------------------------------------------------------------
    def _identity(self, video: str, grid: np.ndarray) -> tuple:
        """In-memory key: path, size, mtime_ns (the file as it is now) and the grid."""
        try:
            st = os.stat(video)
        except OSError as exc:
            from tspo_eval.errors import VideoError

            raise VideoError(video, f"cannot read the file ({exc.strerror or exc})") from None
        return os.path.realpath(video), st.st_size, st.st_mtime_ns, _grid_digest(grid)

    def key_for(self, video: str | os.PathLike, grid: np.ndarray) -> CacheKey:
        """The store file's key: video content, grid, fps, decoder, ``max_pixels``."""
        from tspo_eval.video import video_fingerprint

        video = os.fspath(video)
        grid = np.asarray(grid, dtype=np.int64)
        identity = self._identity(video, grid)[:3]
        if identity not in self._fingerprints:
            self._fingerprints[identity] = video_fingerprint(video)
        stride = int(grid[1] - grid[0]) if len(grid) > 1 else 1
        part = (f"decoded-frames/{FORMAT_VERSION}|fps={self.fps!r}|max_pixels={self.max_pixels}|"
                f"grid={_grid_digest(grid)}")
        return CacheKey(video_fingerprint=self._fingerprints[identity], candidate_stride=max(1, stride),
                        num_candidates=len(grid), encoder_fingerprint=part, decoder=self.decoder)

    def path_for(self, video: str | os.PathLike, grid: np.ndarray) -> Path:
        """``<root>/<key digest>.npy``."""
        return self.root / f"{self.key_for(video, grid).digest}{SUFFIX}"

    # -- reads -----------------------------------------------------------------------------
    def frames(self, video: str | os.PathLike, grid: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """uint8 ``[N, h, w, 3]``: the stored frames of source frame ``numbers`` (any order, repeats allowed).

        Args:
            grid: int64 ``[T]``, the video's candidate grid (increasing).
            numbers: int ``[N]``, frame numbers, each in ``grid``.
        Raises:
            ValueError: a frame number not in the grid (naming it and the video).
        """
        video = os.fspath(video)
        grid = np.asarray(grid, dtype=np.int64).reshape(-1)
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        if len(grid) > 1 and not np.all(np.diff(grid) > 0):
            raise ValueError(f"{video}: the candidate grid must be increasing")
        rows = np.searchsorted(grid, numbers)
        found = rows < len(grid)
        found[found] = grid[rows[found]] == numbers[found]
        if not found.all():
            raise ValueError(f"{video}: frame number {int(numbers[~found][0])} is not in its candidate grid "
                             f"({len(grid)} candidates)")
        if video in self._unwritable:
            return self._decode_direct(video, numbers)
        try:
            stored = self.array(video, grid)
        except StoreWriteError as exc:  # full disk, read-only folder: decode as before the store
            self._unwritable.add(video)
            logger.warning("decoded-frame store: cannot write frames of video {} into {} ({}); decoding its "
                           "frames per prompt instead", video, self.root, exc)
            return self._decode_direct(video, numbers)
        return np.ascontiguousarray(stored[rows])

    def source_frames(self, video: str | os.PathLike, numbers: np.ndarray) -> np.ndarray:
        """:meth:`frames` with the grid from ``grid_of`` (the trainer's candidates of ``video``)."""
        if self.grid_of is None:
            raise ValueError("this DecodedFrameStore was built without grid_of; call frames(video, grid, numbers)")
        return self.frames(video, self.grid_of(os.fspath(video)), numbers)

    def array(self, video: str | os.PathLike, grid: np.ndarray) -> np.ndarray:
        """The read-only memory map uint8 ``[T, h, w, 3]`` of ``video``'s candidates (decoded first when missing)."""
        video = os.fspath(video)
        grid = np.asarray(grid, dtype=np.int64).reshape(-1)
        identity = self._identity(video, grid)
        hit = self._open.get(identity)
        if hit is not None:
            self._open.move_to_end(identity)
            return hit
        path = self.path_for(video, grid)
        try:
            stored = self._open_file(path, len(grid))
        except FileNotFoundError:
            stored = None
        except StoreFileError as exc:
            logger.warning("decoded-frame store: file {} of video {} is unusable ({}); decoding the video again",
                           path, video, exc)
            stored = None
        if stored is None:
            try:
                self._fill(video, grid, path)
            except OSError as exc:  # the decoders raise VideoError; an OSError here is the write
                raise StoreWriteError(f"{type(exc).__name__}: {exc}") from None
            stored = self._open_file(path, len(grid))
        self._open[identity] = stored
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)  # the map closes when its last reference goes
        return stored

    def _open_file(self, path: Path, n_candidates: int) -> np.ndarray:
        """The memory map of ``path``; StoreFileError when it is not a complete uint8 [T, h, w, 3] array."""
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        except (ValueError, OSError, EOFError) as exc:  # bad header, truncated data
            raise StoreFileError(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(stored, np.memmap) or stored.dtype != np.uint8 or stored.ndim != 4 or stored.shape[3] != 3:
            raise StoreFileError(f"holds {getattr(stored, 'dtype', '?')} {getattr(stored, 'shape', '?')}, "
                                 "not uint8 [T, H, W, 3]")
        if stored.shape[0] != n_candidates:
            raise StoreFileError(f"{stored.shape[0]} frames for a grid of {n_candidates} candidates")
        height, width = stored.shape[1:3]
        if self.max_pixels and height * width > self.max_pixels:
            raise StoreFileError(f"frames of {width}x{height} exceed {self.max_pixels} pixels")
        if stored.offset + stored.nbytes != path.stat().st_size:
            raise StoreFileError(f"{path.stat().st_size} bytes on disk for {stored.offset + stored.nbytes} expected")
        return stored

    # -- writes ----------------------------------------------------------------------------
    def _fill(self, video: str, grid: np.ndarray, path: Path) -> None:
        """Decode every frame of ``grid`` in one forward pass into ``path`` (atomically, chunk by chunk:
        memory holds ``chunk_size`` frames whatever the video's length)."""
        from tspo_eval import video as video_io
        from tspo_eval.errors import VideoError

        with video_io.open_video(video, self.decoder) as reader:  # the module's attribute: tests count opens
            meta = reader.metadata
            chunks = (fit_pixels(c, self.max_pixels) for c in video_io.iter_frame_chunks(reader, grid, self.chunk_size))
            first = next(chunks, None)
            frame_shape = first.shape[1:] if first is not None else (*scaled_size(meta.height, meta.width,
                                                                                  self.max_pixels), 3)
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                      "shape": (len(grid), *frame_shape)}
            written = 0
            with atomic_output(path) as handle:
                np.lib.format.write_array_header_1_0(handle, header)
                for chunk in itertools.chain([first] if first is not None else [], chunks):
                    if chunk.shape[1:] != frame_shape:
                        raise VideoError(video, f"frame size changes from {frame_shape[1]}x{frame_shape[0]} to "
                                                f"{chunk.shape[2]}x{chunk.shape[1]}")
                    handle.write(np.ascontiguousarray(chunk, dtype=np.uint8).tobytes())
                    written += len(chunk)
                if written != len(grid):
                    raise VideoError(video, f"decoded {written} of {len(grid)} candidate frames")
        self.fills += 1
        logger.debug("decoded-frame store: {} candidates of {} -> {} ({:.1f} MiB)", len(grid), video, path.name,
                     path.stat().st_size / 2**20)

    def _decode_direct(self, video: str, numbers: np.ndarray) -> np.ndarray:
        """The frames without the store (its folder cannot be written): decoded now, downscaled alike."""
        from tspo_eval import video as video_io

        return fit_pixels(video_io.decode_frames(video, numbers.tolist(), decoder=self.decoder), self.max_pixels)

    # -- maintenance -----------------------------------------------------------------------
    def info(self) -> dict:
        """``{"root": str, "files": int, "bytes": int}`` of the store folder as it is now."""
        files, total = 0, 0
        if self.root.is_dir():
            for entry in self.root.glob(f"*{SUFFIX}"):
                try:
                    total += entry.stat().st_size
                    files += 1
                except FileNotFoundError:
                    pass
        return {"root": str(self.root), "files": files, "bytes": total}

    def clear(self) -> int:
        """Remove every stored file (and leftover temporary files); returns the number of files removed."""
        removed = 0
        self._open.clear()
        if self.root.is_dir():
            for entry in self.root.iterdir():
                if entry.name.endswith(SUFFIX) or entry.name.startswith("."):
                    try:
                        entry.unlink()
                        removed += entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
                    except OSError:
                        pass
        return removed
