"""PyAV backend: a packet index built at open time, keyframe seeks and forward decoding."""
from __future__ import annotations

import numpy as np
from loguru import logger

from tspo_eval.errors import VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.probe import check_file, explain_open_error, probe


class PyAVReader(VideoReader):
    """Random access by presentation timestamp.

    At open, the packets of the video stream are demuxed (not decoded) to list every frame's
    timestamp and the keyframes, in presentation order; frame number ``i`` is the ``i``-th
    timestamp.  To reach frame ``t`` the reader decodes forward from where it is, unless ``t``
    lies behind it or a keyframe lies between the two; then it seeks to the keyframe preceding
    ``t``.  Dense increasing requests (the candidate grid) are thus one forward pass.
    """

    name = "pyav"

    def __init__(self, path: str, threads: bool = True) -> None:
        import av

        path = check_file(path)
        header = probe(path)
        self._path = path
        try:
            self._container = av.open(path)
        except (av.error.FFmpegError, OSError) as exc:  # pragma: no cover - probe opened it
            raise explain_open_error(path, exc) from None
        self._stream = self._container.streams.video[0]
        if threads:
            self._stream.thread_type = "AUTO"
        self._pts, self._keyframes = self._index_packets()
        n_frames = len(self._pts)
        if header.declared_frames and n_frames < header.declared_frames:
            self._container.close()
            raise VideoError(
                path,
                f"truncated file: the container declares {header.declared_frames} frames "
                f"but only {n_frames} are present",
            )
        try:
            metadata = make_metadata(path, n_frames, header.average_rate, header.width, header.height, self.name)
        except VideoError:
            self._container.close()
            raise
        super().__init__(metadata)
        self._frames = None  # the live decode generator
        self._pos = -1  # frame number of the last decoded frame (-1: nothing decoded)

    def _index_packets(self) -> tuple[np.ndarray, np.ndarray]:
        """(pts int64 [N] sorted, frame numbers of keyframes int64 [M])."""
        import av

        pts: list[int] = []
        keys: list[int] = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is None or packet.size == 0:
                    continue
                pts.append(int(packet.pts))
                if packet.is_keyframe:
                    keys.append(int(packet.pts))
        except (av.error.FFmpegError, OSError) as exc:
            self._container.close()
            raise VideoError(self._path, f"truncated or corrupt file while indexing packets ({exc})") from None
        pts_arr = np.asarray(sorted(pts), dtype=np.int64)
        key_arr = np.searchsorted(pts_arr, np.asarray(sorted(keys), dtype=np.int64))
        if key_arr.size == 0 or key_arr[0] != 0:
            key_arr = np.concatenate([[0], key_arr]).astype(np.int64)
        return pts_arr, key_arr

    def _keyframe_before(self, index: int) -> int:
        return int(self._keyframes[np.searchsorted(self._keyframes, index, side="right") - 1])

    def _seek(self, index: int) -> None:
        keyframe = self._keyframe_before(index)
        self._container.seek(int(self._pts[keyframe]), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._pos = keyframe - 1

    def _frame_number(self, frame) -> int:
        if frame.pts is None:
            return self._pos + 1
        i = int(np.searchsorted(self._pts, frame.pts))
        if i < len(self._pts) and self._pts[i] == frame.pts:
            return i
        return self._pos + 1

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        import av

        m = self.metadata
        out = np.empty((len(indices), m.height, m.width, 3), dtype=np.uint8)
        for k, target in enumerate(indices.tolist()):
            if self._frames is None or target <= self._pos or self._keyframe_before(target) > self._pos:
                self._seek(target)
            while True:
                try:
                    frame = next(self._frames)
                except StopIteration:
                    self._frames = None
                    raise VideoError(m.path, f"frame {target} could not be decoded (truncated file?)") from None
                except av.error.FFmpegError as exc:
                    self._frames = None
                    raise VideoError(m.path, f"decoding failed near frame {target} ({exc})") from None
                number = self._frame_number(frame)
                self._pos = number
                if number < target:
                    continue
                if number > target:
                    logger.warning("{}: frame {} missing from the decoded stream; using frame {}", m.path, target, number)
                out[k] = self._to_rgb(frame)
                break
        return out

    def _to_rgb(self, frame) -> np.ndarray:
        m = self.metadata
        if frame.width != m.width or frame.height != m.height:
            frame = frame.reformat(width=m.width, height=m.height)
        return frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        if not self._closed and getattr(self, "_container", None) is not None:
            self._frames = None
            self._container.close()
        super().close()
