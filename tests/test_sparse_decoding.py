"""Exact sparse decoding (PyAV, H.264/HEVC): non-reference frames nobody asked for are skipped, and
every returned frame is bit-identical to a full decode, for the candidate grid and for any other read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tspo_eval.testing.videos import write_test_video
from tspo_eval.video import candidate_grid, iter_frame_chunks
from tspo_eval.video.pyav_backend import PyAVReader

# name -> write_test_video kwargs; each has non-reference B-frames (x264/x265 with bframes)
KINDS = {
    "h264_bframes": dict(codec="libx264", n_frames=150, fps=30.0, gop=60, bframes=3),
    "h264_ntsc_long_gop": dict(codec="libx264", n_frames=180, fps=30000 / 1001, gop=250, bframes=3),
    "hevc_open_gop": dict(codec="libx265", n_frames=120, fps=25.0, gop=50, bframes=4),
    "h264_vfr_bframes": dict(codec="libx264", n_frames=60, fps=15.0, gop=30, bframes=3,
                             frame_times=[i / 30 for i in range(30)] + [1.0 + 0.1 * i for i in range(30)]),
    "h264_edit_list": dict(codec="libx264", n_frames=150, fps=30.0, gop=60, bframes=3, dropped_lead_in=20),
}
SUFFIX = {"libx265": ".mkv"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    import av

    root = tmp_path_factory.mktemp("sparse")
    out = {}
    for kind, kwargs in KINDS.items():
        if kwargs["codec"] not in av.codecs_available:
            continue
        out[kind] = write_test_video(root / f"{kind}{SUFFIX.get(kwargs['codec'], '.mp4')}", width=64, height=48,
                                     **kwargs)
    return out


def _grid_frames(path: Path, sparse: bool) -> tuple[np.ndarray, int]:
    with PyAVReader(str(path), sparse=sparse) as reader:
        grid = candidate_grid(reader.metadata, 10.0)  # every third frame: skippable frames between
        frames = np.concatenate(list(iter_frame_chunks(reader, grid, chunk_size=1)))
        return frames, reader.frames_decoded


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_grid_is_bit_identical_and_skips_frames(videos, kind) -> None:
    if kind not in videos:
        pytest.skip(f"no encoder for {kind}")
    full, decoded_full = _grid_frames(videos[kind], sparse=False)
    sparse, decoded_sparse = _grid_frames(videos[kind], sparse=True)
    assert sparse.shape == full.shape
    assert np.array_equal(sparse, full)
    assert decoded_sparse < decoded_full, (decoded_sparse, decoded_full)


@pytest.mark.parametrize("kind", ["h264_bframes", "hevc_open_gop"])
def test_reads_outside_the_announced_plan_are_exact(videos, kind) -> None:
    """Frames read one by one, backwards, repeated, and after a plan that skipped them."""
    if kind not in videos:
        pytest.skip(f"no encoder for {kind}")
    path = str(videos[kind])
    with PyAVReader(path, sparse=False) as reader:
        every = reader.get_frames(np.arange(reader.metadata.n_frames))
    rng = np.random.default_rng(3)
    with PyAVReader(path, sparse=True) as reader:
        n = reader.metadata.n_frames
        reader.expect(np.arange(0, n, 10))
        for number in [*rng.choice(n, 25, replace=False).tolist(), 7, 7, 3, n - 1, 0]:
            assert np.array_equal(reader.get_frames([number])[0], every[number]), number
        # frame by frame forwards: the decoder has taken the next packets (B-frames) before they were asked for
        for number in range(0, 40):
            assert np.array_equal(reader.get_frames([number])[0], every[number]), number
        # a plan whose frames go by as skippable, then the frames between them
        reader.expect(np.arange(0, n, 10))
        reader.get_frames(np.arange(0, n // 2, 10))
        odd = np.arange(1, n // 2, 10)
        assert np.array_equal(reader.get_frames(odd), every[odd])


def test_only_h264_and_hevc_decode_sparsely(tmp_path) -> None:
    import av

    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("no VP9 encoder")
    vp9 = write_test_video(tmp_path / "a.webm", codec="libvpx-vp9", n_frames=30, gop=15)
    h264 = write_test_video(tmp_path / "b.mp4", n_frames=30, bframes=2)
    with PyAVReader(str(vp9)) as reader:
        assert not reader.sparse
    with PyAVReader(str(h264)) as reader:
        assert reader.sparse
    with PyAVReader(str(h264), sparse=False) as reader:
        assert not reader.sparse
