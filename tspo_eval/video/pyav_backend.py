"""PyAV backend: a packet index built at open time, keyframe seeks and forward decoding that
skips the non-reference frames nobody asked for (exact sparse decoding)."""
from __future__ import annotations

import numpy as np
from loguru import logger

from tspo_eval.errors import VideoError
from tspo_eval.video.base import VideoReader
from tspo_eval.video.metadata import make_metadata
from tspo_eval.video.packets import index_packets
from tspo_eval.video.probe import StreamHeader, check_file, explain_open_error, probe

#: codecs whose FFmpeg decoders honour ``skip_frame=NONREF`` packet by packet: a frame no other frame
#: references is dropped before its slices are decoded, every other frame decodes bit-identically
SPARSE_CODECS = frozenset({"h264", "hevc"})


class PyAVReader(VideoReader):
    """Random access by presentation timestamp.

    At open, the packets of the video stream are demuxed (not decoded) into a
    :class:`~tspo_eval.video.packets.PacketIndex`: frame number ``i`` is the ``i``-th
    presentation timestamp.  To reach frame ``t`` the reader decodes forward from where it is,
    unless ``t`` lies behind it or a keyframe lies between the two; then it seeks to the keyframe
    preceding ``t``.  Dense increasing requests (the candidate grid) are thus one forward pass.
    Frame times come from the same index (true presentation times, also for variable frame rates).

    Sparse decoding (``sparse=True``, H.264 and HEVC): packets are fed to the decoder one by one,
    and a packet whose frame is neither asked for now nor announced by :meth:`expect` is sent with
    ``skip_frame=NONREF``, so the decoder drops it when no other frame references it (B-frames
    outside a pyramid: about half of a typical x264 stream).  Reference frames are always decoded,
    so every returned frame is bit-identical to a full decode; a frame that was asked for after
    its packet had gone by as skippable is decoded again from its keyframe.
    """

    name = "pyav"

    def __init__(self, path: str, threads: bool | int = True, header: StreamHeader | None = None,
                 sparse: bool = True) -> None:
        import av

        path = check_file(path)
        header = header or probe(path)
        self._path = path
        try:
            self._container = av.open(path)
        except (av.error.FFmpegError, OSError) as exc:  # pragma: no cover - probe opened it
            raise explain_open_error(path, exc) from None
        self._stream = self._container.streams.video[0]
        if threads is not False:  # True / 0: FFmpeg's frame+slice threads on every core; n: n threads
            self._stream.thread_type = "AUTO"
            if not isinstance(threads, bool) and int(threads) > 0:
                self._stream.codec_context.thread_count = int(threads)
        try:
            self._index = index_packets(self._container, self._stream, path)
        except VideoError:
            self._container.close()
            raise
        n_frames = self._index.n_frames
        present = n_frames + self._index.discarded
        if header.declared_frames and present < header.declared_frames:
            self._container.close()
            raise VideoError(
                path,
                f"truncated file: the container declares {header.declared_frames} frames "
                f"but only {present} are present",
            )
        try:
            metadata = make_metadata(path, n_frames, header.average_rate, header.width, header.height, self.name)
        except VideoError:
            self._container.close()
            raise
        super().__init__(metadata)
        self._frames = None  # the live decode generator
        self._pos = -1  # frame number of the last decoded frame (-1: nothing decoded)
        self.sparse = bool(sparse) and self._stream.codec_context.name in SPARSE_CODECS
        self._planned_pts: frozenset[int] = frozenset()  # announced by expect(): never skipped
        self._asked_pts: frozenset[int] = frozenset()  # asked for by the read in progress: never skipped
        self._skippable_sent: set[int] = set()  # pts sent as skippable since the last seek
        self.frames_decoded = 0  # frames the decoder returned (sparse decoding returns fewer)

    def expect(self, indices: np.ndarray) -> None:
        """Announce the frames the next reads will ask for (the candidate grid): they are never skipped."""
        if self.sparse:
            self._planned_pts = frozenset(self._index.pts[self.check_indices(indices)].tolist())

    def _load_frame_times(self) -> np.ndarray:
        return self._index.frame_times()

    def _seek(self, index: int) -> None:
        start = self._index.seek_pts(index)
        self._container.seek(start, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decode_forward()
        self._pos = int(np.searchsorted(self._index.pts, start)) - 1
        self._skippable_sent = set()

    def _decode_forward(self):
        """Frames from the current position on; unwanted packets go in as skippable (sparse mode)."""
        if not self.sparse:
            yield from self._container.decode(self._stream)
            return
        codec = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            keep = packet.pts is None or packet.pts in self._asked_pts or packet.pts in self._planned_pts  # None: flush
            codec.skip_frame = "DEFAULT" if keep else "NONREF"
            if not keep:
                self._skippable_sent.add(int(packet.pts))
            yield from codec.decode(packet)

    def _frame_number(self, frame) -> int:
        pts = self._index.pts
        if frame.pts is None:
            return self._pos + 1
        i = int(np.searchsorted(pts, frame.pts))
        if i < len(pts) and pts[i] == frame.pts:
            return i
        if frame.pts < pts[0]:  # a discarded lead-in frame an older FFmpeg still outputs
            return -1
        return self._pos + 1

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        import av

        m = self.metadata
        out = np.empty((len(indices), m.height, m.width, 3), dtype=np.uint8)
        if self.sparse:
            self._asked_pts = frozenset(self._index.pts[indices].tolist())
        for k, target in enumerate(indices.tolist()):
            if (self._frames is None or target <= self._pos or self._index.keyframe_between(self._pos, target)
                    or int(self._index.pts[target]) in self._skippable_sent):  # sent as skippable: maybe dropped
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
                self.frames_decoded += 1
                number = self._frame_number(frame)
                if number < 0:
                    continue
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
