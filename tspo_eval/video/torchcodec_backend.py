"""torchcodec backend (optional: ``pip install tspo-eval[decoders]``)."""
from __future__ import annotations

import numpy as np

from tspo_eval.errors import InputError, VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.probe import check_file, explain_open_error, probe


def _import_decoder():
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exc:  # ImportError, or FFmpeg libraries torchcodec cannot load
        raise InputError(
            f"decoder 'torchcodec' is not available ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "install it with: pip install tspo-eval[decoders]  (or use --decoder decord / pyav)"
        ) from None
    return VideoDecoder


class TorchCodecReader(VideoReader):
    """``torchcodec.decoders.VideoDecoder`` with exact seeking, frames as NHWC uint8."""

    name = "torchcodec"

    def __init__(self, path: str) -> None:
        VideoDecoder = _import_decoder()
        path = check_file(path)
        header = probe(path)
        try:
            try:
                self._decoder = VideoDecoder(path, dimension_order="NHWC", seek_mode="exact", num_ffmpeg_threads=0)
            except TypeError:  # torchcodec < 0.2: no seek_mode / thread options
                self._decoder = VideoDecoder(path, dimension_order="NHWC")
        except Exception as exc:  # torchcodec raises RuntimeError/ValueError with FFmpeg's text
            raise explain_open_error(path, exc) from None
        meta = self._decoder.metadata
        n_frames = getattr(meta, "num_frames", None) or len(self._decoder)
        avg_fps = getattr(meta, "average_fps", None) or header.average_rate
        super().__init__(make_metadata(path, n_frames, avg_fps, header.width, header.height, self.name))

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
