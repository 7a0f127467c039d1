"""The packet index of a video stream, read with PyAV by demuxing (no decoding).

Frame number ``i`` is the ``i``-th presented frame: the ``i``-th smallest presentation
timestamp among the packets FFmpeg will output.  Packets the container marks as *discarded*
(an MP4 edit list that starts after the first packets, as left by cutting a video without
re-encoding) are decoded only as references and never presented, so they get no frame number;
every backend (decord excepted, which tspo-eval refuses on such files) counts the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from tspo_eval.errors import VideoError


@dataclass(frozen=True)
class PacketIndex:
    """Timestamps of one video stream, in stream time-base ticks.

    Attributes:
        pts: int64 [N], presentation timestamps of the presented frames, sorted; frame ``i`` has ``pts[i]``.
        key_pts: int64 [M], presentation timestamps of the keyframe packets (discarded ones
            included: decoding may have to start there), sorted.
        time_base: seconds per tick.
        discarded: packets marked as discarded (not counted in ``pts``).
        leading: packets that follow a keyframe in decode order but are shown before it
            ("leading pictures" of an open GOP, as x265 writes by default with B-frames).
    """

    pts: np.ndarray
    key_pts: np.ndarray
    time_base: Fraction
    discarded: int
    leading: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.pts.size)

    def frame_times(self) -> np.ndarray:
        """float64 [N]: presentation time of every frame in seconds, relative to frame 0."""
        if self.pts.size == 0:
            return np.zeros(0, dtype=np.float64)
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    def seek_pts(self, index: int) -> int:
        """The pts of the last keyframe at or before frame ``index`` (where decoding it starts)."""
        target = self.pts[index]
        k = int(np.searchsorted(self.key_pts, target, side="right")) - 1
        return int(self.key_pts[max(k, 0)]) if self.key_pts.size else int(self.pts[0])

    def keyframe_between(self, after: int, upto: int) -> bool:
        """Whether a keyframe lies in ``(pts[after], pts[upto]]`` (a seek would skip decoding)."""
        lo = self.pts[after] if after >= 0 else np.iinfo(np.int64).min
        hi = self.pts[upto]
        first = int(np.searchsorted(self.key_pts, lo, side="right"))
        return first < self.key_pts.size and self.key_pts[first] <= hi


def index_packets(container, stream, path: str) -> PacketIndex:
    """Demux every packet of ``stream`` in the open PyAV ``container`` (no decoding).

    Raises :class:`VideoError` naming ``path`` when demuxing fails (a torn file).
    """
    import av

    pts: list[int] = []
    keys: list[int] = []
    discarded = leading = 0
    try:
        for packet in container.demux(stream):  # decode order
            if packet.pts is None or packet.size == 0:
                continue
            if packet.is_keyframe:
                keys.append(int(packet.pts))
            elif keys and packet.pts < keys[-1]:
                leading += 1
            if getattr(packet, "is_discard", False):
                discarded += 1
                continue
            pts.append(int(packet.pts))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(path, f"truncated or corrupt file while indexing packets ({exc})") from None
    time_base = stream.time_base or Fraction(1, 1)
    return PacketIndex(
        pts=np.asarray(sorted(pts), dtype=np.int64),
        key_pts=np.asarray(sorted(keys), dtype=np.int64),
        time_base=Fraction(time_base),
        discarded=discarded,
        leading=leading,
    )


def read_packet_index(path: str) -> PacketIndex:
    """Open ``path`` with PyAV, index its first video stream's packets, close it."""
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(path, f"cannot be opened to read frame times ({exc})") from None
    try:
        if not container.streams.video:
            raise VideoError(path, "no video stream")
        return index_packets(container, container.streams.video[0], path)
    finally:
        container.close()
