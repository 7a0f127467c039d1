"""Cheap content fingerprints of weights (no full read of multi-GB files).

For safetensors files the fingerprint hashes the header entries (name, dtype, shape) of the
selected tensors plus a strided sample of their raw bytes (16 x 64 bytes per tensor), so it
changes when weights are retrained or re-initialised and costs milliseconds for CLIP ViT-L/14.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor

SAMPLES_PER_TENSOR = 16
SAMPLE_BYTES = 64


def _safetensors_header(handle) -> tuple[dict, int]:
    (size,) = struct.unpack("<Q", handle.read(8))
    return json.loads(handle.read(size)), 8 + size


def hash_safetensors(files: Iterable[Path], prefixes: tuple[str, ...], digest: "hashlib._Hash") -> int:
    """Feed header entries + strided byte samples of tensors named ``prefixes*`` into ``digest``; returns the count.

    Tensors are visited in name order across all files, so sharding does not change the result.
    """
    entries = []
    for file in files:
        with open(file, "rb") as handle:
            header, data_start = _safetensors_header(handle)
        entries += [(name, file, header[name], data_start) for name in header
                    if name != "__metadata__" and name.startswith(prefixes)]
    with contextlib.ExitStack() as stack:
        handles: dict[Path, BinaryIO] = {}   # one open handle per file, all closed on leaving
        for name, file, entry, data_start in sorted(entries, key=lambda item: item[0]):
            if file not in handles:
                handles[file] = stack.enter_context(open(file, "rb"))
            handle = handles[file]
            begin, end = entry["data_offsets"]
            digest.update(json.dumps([name, entry["dtype"], entry["shape"]]).encode())
            step = max((end - begin) // SAMPLES_PER_TENSOR, 1)
            for offset in range(begin, end, step)[:SAMPLES_PER_TENSOR]:
                handle.seek(data_start + offset)
                digest.update(handle.read(min(SAMPLE_BYTES, end - offset)))
    return len(entries)


def hash_tensors(named: Iterable[tuple[str, Tensor]], digest: "hashlib._Hash", sample: int | None = None) -> None:
    """Feed names, shapes and float32 values (all, or a strided sample of ``sample`` values) into ``digest``."""
    for name, tensor in sorted(named, key=lambda item: item[0]):
        flat = tensor.detach().reshape(-1)
        if sample is not None and flat.numel() > sample:
            flat = flat[:: flat.numel() // sample][:sample]
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(flat.to("cpu", torch.float32).contiguous().numpy().tobytes())


def short(digest: "hashlib._Hash") -> str:
    """The 16 first hex digits of ``digest``."""
    return digest.hexdigest()[:16]
