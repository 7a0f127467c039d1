"""Video decoding for frame selection: open a file through a backend (``auto``: decord with a
PyAV fallback; or decord, PyAV, torchcodec), read its metadata and per-frame presentation
times, build the candidate grid, stream candidate frames in bounded chunks and decode
arbitrary frame numbers.

Every unusable file raises :class:`tspo_eval.errors.VideoError` naming the path and the problem.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from tspo_eval.errors import InputError
from tspo_eval.video.base import VideoReader, iter_frame_chunks
from tspo_eval.video.fingerprint import video_fingerprint
from tspo_eval.video.grid import candidate_grid, candidate_stride, uniform_frame_indices
from tspo_eval.video.metadata import VideoMetadata

#: ``auto`` (the default) is decord, falling back to PyAV per file; see :mod:`tspo_eval.video.auto`.
#: ``torchcodec-cuda`` decodes on the GPU (NVDEC) through torchcodec.
DECODERS = ("auto", "decord", "pyav", "torchcodec", "torchcodec-cuda")
DEFAULT_DECODER = "auto"


def open_video(path: str | os.PathLike, decoder: str = DEFAULT_DECODER, threads: int = 0) -> VideoReader:
    """Open ``path`` with ``decoder`` (one of :data:`DECODERS`); a context manager.

    ``threads``: decoding threads of the backend (0: its default, all cores; PyAV and torchcodec
    use FFmpeg's frame+slice threading, decord its own ``num_threads``).  Raises :class:`InputError` for an unknown or uninstalled decoder and :class:`VideoError`
    for a file that cannot be used.
    """
    name = str(decoder).lower()
    if name == "auto":
        from tspo_eval.video.auto import AutoReader

        return AutoReader(os.fspath(path), threads=threads)
    if name == "decord":
        from tspo_eval.video.decord_backend import DecordReader

        return DecordReader(os.fspath(path), num_threads=threads)
    if name == "pyav":
        from tspo_eval.video.pyav_backend import PyAVReader

        return PyAVReader(os.fspath(path), threads=threads)
    if name == "torchcodec":
        from tspo_eval.video.torchcodec_backend import TorchCodecReader

        return TorchCodecReader(os.fspath(path), threads=threads)
    if name == "torchcodec-cuda":
        from tspo_eval.video.torchcodec_backend import TorchCodecReader

        return TorchCodecReader(os.fspath(path), threads=threads, device="cuda")
    raise InputError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")


def decode_frames(
    path: str | os.PathLike, indices: Sequence[int] | np.ndarray, decoder: str = DEFAULT_DECODER
) -> np.ndarray:
    """Open ``path``, return uint8 [N,H,W,3] RGB frames at ``indices`` (given order), close."""
    with open_video(path, decoder) as reader:
        return reader.get_frames(indices)


__all__ = [
    "DECODERS",
    "DEFAULT_DECODER",
    "VideoMetadata",
    "VideoReader",
    "candidate_grid",
    "candidate_stride",
    "decode_frames",
    "iter_frame_chunks",
    "open_video",
    "uniform_frame_indices",
    "video_fingerprint",
]
