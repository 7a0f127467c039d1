"""torchcodec backend (optional).

torchcodec is on PyPI but loads the system's FFmpeg shared libraries (major versions 4 to 9 in
torchcodec 0.17; Debian 12 ships FFmpeg 5.1) and must match the installed torch release (see
torchcodec's compatibility table).  :data:`INSTALL_HINT` says how to get both.
"""
from __future__ import annotations

import numpy as np

from tspo_eval.errors import InputError, VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.packets import read_packet_index
from tspo_eval.video.probe import StreamHeader, check_file, explain_open_error, probe

INSTALL_HINT = (
    "install it with: pip install torchcodec (the release matching your torch), plus FFmpeg's shared "
    "libraries (Debian/Ubuntu: apt-get install ffmpeg); or use --decoder auto / decord / pyav"
)


def _import_decoder():
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # ImportError, or FFmpeg libraries torchcodec cannot load
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            f"decoder 'torchcodec' is not available ({type(exc).__name__}: {first_line[:300]}); {INSTALL_HINT}"
        ) from None
    return VideoDecoder


CUDA_HINT = "use --decoder torchcodec (CPU), auto, decord or pyav"


def check_cuda_decoding() -> None:
    """:class:`InputError` unless torchcodec can decode on a CUDA GPU here (NVDEC, ``torchcodec-cuda``)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        raise InputError(f"decoder 'torchcodec-cuda' needs torch with CUDA ({exc}); {CUDA_HINT}") from None
    if not torch.cuda.is_available():
        raise InputError(f"decoder 'torchcodec-cuda' needs a CUDA GPU, and torch sees none "
                         f"(torch {torch.__version__}, torch.cuda.is_available() is False); {CUDA_HINT}")


class TorchCodecReader(VideoReader):
    """``torchcodec.decoders.VideoDecoder`` with exact seeking, frames as NHWC uint8.

    At open, a PyAV packet index (demuxing, no decoding) gives the frame times (torchcodec
    reports times only for the frames it decodes, and a feature-cache hit decodes none) and the
    truncation check the other backends make (torchcodec silently counts only what is there).
    """

    name = "torchcodec"

    def __init__(self, path: str, header: StreamHeader | None = None, threads: int = 0, device: str = "cpu") -> None:
        VideoDecoder = _import_decoder()
        if device != "cpu":
            check_cuda_decoding()
            self.name = "torchcodec-cuda"  # NVDEC pixels differ from FFmpeg's: their own feature-cache key
        path = check_file(path)
        header = header or probe(path)
        try:
            if device != "cpu":
                self._decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact", device=device)
            else:
                try:
                    self._decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact",
                                                 num_ffmpeg_threads=int(threads))
                except TypeError:  # torchcodec < 0.2: no seek_mode / thread options
                    self._decoder = VideoDecoder(path, dimension_order="NHWC")
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError with FFmpeg's text
            if device != "cpu" and "cuda" in str(exc).lower():
                raise InputError(f"{path}: torchcodec cannot decode on {device} ({str(exc).splitlines()[0][:200]}); "
                                 f"{CUDA_HINT}") from None
            raise explain_open_error(path, exc) from None
        index = read_packet_index(path)
        present = index.n_frames + index.discarded
        if header.declared_frames and present < header.declared_frames:
            raise VideoError(
                path,
                f"truncated file: the container declares {header.declared_frames} frames but only {present} are present",
            )
        self._index = index
        meta = self._decoder.metadata
        n_frames = getattr(meta, "num_frames", None) or len(self._decoder)
        # the container's average rate, as decord and PyAV read it: the same candidate grid
        avg_fps = header.average_rate or getattr(meta, "average_fps", None)
        super().__init__(make_metadata(path, n_frames, avg_fps, header.width, header.height, self.name))

    def _load_frame_times(self) -> np.ndarray:
        return self._index.frame_times()

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        try:
            batch = self._decoder.get_frames_at(indices=indices.tolist())
        except Exception as exc:
            raise VideoError(self.metadata.path, f"decoding failed ({str(exc).splitlines()[0][:200]})") from None
        data = batch.data if hasattr(batch, "data") else batch
        return np.ascontiguousarray(data.cpu().numpy(), dtype=np.uint8)

    def close(self) -> None:
        self._decoder = None
        super().close()
