"""tspo_eval.video: backends agree, the candidate grid, streaming, and every bad file -> VideoError."""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tspo_eval.errors import InputError, VideoError
from tspo_eval.video import (
    DECODERS,
    VideoMetadata,
    candidate_grid,
    candidate_stride,
    decode_frames,
    iter_frame_chunks,
    open_video,
    uniform_frame_indices,
    video_fingerprint,
)
from tspo_eval.video.metadata import make_metadata

try:  # torchcodec is optional (CI installs it); when importable it joins the agreement tests
    import torchcodec.decoders  # noqa: F401

    HAVE_TORCHCODEC, TORCHCODEC_PROBLEM = True, ""
except Exception as exc:  # ImportError, or FFmpeg's shared libraries missing
    HAVE_TORCHCODEC, TORCHCODEC_PROBLEM = False, f"{type(exc).__name__}: {str(exc)[:300]}"

BACKENDS = ("auto", "decord", "pyav") + (("torchcodec",) if HAVE_TORCHCODEC else ())
# (name, frames, native fps, keyframe interval)
VIDEOS = {
    "ntsc": (150, 30000 / 1001, 250),
    "pal": (130, 25.0, 12),
    "sixty": (185, 60.0, 250),
    "thirty": (95, 30.0, 30),
}


@pytest.fixture(scope="module")
def videos(make_video) -> dict[str, Path]:
    return {
        name: make_video(f"dec_{name}.mp4", n_frames=n, fps=fps, gop=gop, width=64, height=48)
        for name, (n, fps, gop) in VIDEOS.items()
    }


def _level(frames: np.ndarray) -> np.ndarray:
    """Red level of the top-left corner, which testing.videos paints as 255 * index / (n-1)."""
    return frames[:, 2:6, 2:6, 0].reshape(len(frames), -1).mean(axis=1)


# -- grid and metadata -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "avg_fps, fps, stride",
    [(29.97, 1.0, 30), (30000 / 1001, 1.0, 30), (25.0, 1.0, 25), (60.0, 1.0, 60), (30.0, 0.5, 60),
     (23.976, 2.0, 12), (24.0, 0.25, 96), (10.0, 30.0, 1), (59.94, 1.0, 60), (12.5, 1.0, 12)],
)
def test_candidate_stride_and_grid_for_any_fps(avg_fps: float, fps: float, stride: int) -> None:
    assert candidate_stride(avg_fps, fps) == stride
    meta = make_metadata("/v.mp4", 1001, avg_fps, 64, 48, "pyav")
    grid = candidate_grid(meta, fps)
    expected = list(range(0, 1001, max(1, round(avg_fps / fps))))
    assert grid.dtype == np.int64 and grid.tolist() == expected


@pytest.mark.parametrize("fps", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_candidate_fps_is_input_error(fps: float) -> None:
    with pytest.raises(InputError):
        candidate_stride(30.0, fps)


@pytest.mark.parametrize("avg_fps", [0, 0.0, float("nan"), float("inf"), -25.0, None])
def test_bad_fps_metadata_is_video_error(avg_fps) -> None:
    with pytest.raises(VideoError, match="frame rate") as info:
        make_metadata("/data/clip.mp4", 100, avg_fps, 64, 48, "decord")
    assert "/data/clip.mp4" in str(info.value)


def test_zero_frames_metadata_is_video_error() -> None:
    with pytest.raises(VideoError, match="no frames") as info:
        make_metadata("/data/empty_track.mp4", 0, 30.0, 64, 48, "pyav")
    assert "/data/empty_track.mp4" in str(info.value)


def test_uniform_frame_indices() -> None:
    assert uniform_frame_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert uniform_frame_indices(3, 8).tolist() == [0, 1, 2]
    with pytest.raises(InputError):
        uniform_frame_indices(10, 0)


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_backends_agree_on_metadata_and_grid(videos, name: str) -> None:
    n, fps, _ = VIDEOS[name]
    metas = {}
    for backend in BACKENDS:
        with open_video(videos[name], backend) as reader:
            metas[backend] = reader.metadata
    for backend, meta in metas.items():
        assert meta.decoder == ("pyav" if backend == "auto" else backend)  # auto names the backend it used (H.264: PyAV)
        assert meta.n_frames == n, backend
        assert math.isclose(meta.avg_fps, float(Fraction(fps).limit_denominator(1001)), rel_tol=1e-6), backend
        assert (meta.width, meta.height) == (64, 48)
        assert math.isclose(meta.duration, n / meta.avg_fps)
    grids = {b: candidate_grid(m).tolist() for b, m in metas.items()}
    assert all(g == grids["decord"] for g in grids.values())
    assert grids["decord"] == list(range(0, n, round(fps)))


@pytest.mark.parametrize("name", ["ntsc", "pal"])
def test_frames_identical_across_backends_and_match_content(videos, name: str) -> None:
    n = VIDEOS[name][0]
    indices = [n - 1, 0, 37, 37, 5, 64, n // 2]  # unsorted, with a repeat
    frames = {b: decode_frames(videos[name], indices, decoder=b) for b in BACKENDS}
    for backend, arr in frames.items():
        assert arr.shape == (len(indices), 48, 64, 3) and arr.dtype == np.uint8
        expected = np.array([255 * i / (n - 1) for i in indices])
        assert np.abs(_level(arr) - expected).max() < 6, backend  # right frames, in the asked order
    diff = np.abs(frames["decord"].astype(np.int16) - frames["pyav"].astype(np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 8


def test_chunks_equal_one_batch_and_are_bounded(videos) -> None:
    path = videos["ntsc"]
    for backend in BACKENDS:
        with open_video(path, backend) as reader:
            grid = candidate_grid(reader.metadata)
            chunks = list(iter_frame_chunks(reader, grid, chunk_size=2))
            paused = list(iter_frame_chunks(reader, grid, chunk_size=2, pause_between=True))
            whole = reader.get_frames(grid)
        assert [len(c) for c in chunks] == [2, 2, 1]
        np.testing.assert_array_equal(np.concatenate(chunks), whole)
        np.testing.assert_array_equal(np.concatenate(paused), whole)  # decord's pause (a seek) keeps frames right
    with open_video(path, "pyav") as reader, pytest.raises(InputError):
        next(iter_frame_chunks(reader, [0], chunk_size=0))


def test_pyav_streams_dense_candidates_without_reseeking(videos, monkeypatch) -> None:
    from tspo_eval.video.pyav_backend import PyAVReader

    seeks: list[int] = []  # frame numbers of the keyframes each seek lands on
    original = PyAVReader._seek

    def spy(self, i: int) -> None:
        seeks.append(int(np.searchsorted(self._index.pts, self._index.seek_pts(i))))
        original(self, i)

    monkeypatch.setattr(PyAVReader, "_seek", spy)
    with open_video(videos["sixty"], "pyav") as reader:  # keyframe interval 250 > 185 frames
        grid = candidate_grid(reader.metadata)
        for _ in iter_frame_chunks(reader, grid, chunk_size=1):
            pass
        assert seeks == [0]  # one forward pass over all chunks
        reader.get_frames([10])  # behind the decoder: must seek back
        assert len(seeks) == 2
    seeks.clear()
    with open_video(videos["pal"], "pyav") as reader:  # a keyframe every 12 frames
        frames = reader.get_frames([0, 100])
        keyframes = np.searchsorted(reader._index.pts, reader._index.key_pts).tolist()
        assert seeks[0] == 0 and len(seeks) == 2  # jumps to the keyframe before frame 100
        assert 100 - 12 <= seeks[1] <= 100 and seeks[1] in keyframes
        assert abs(_level(frames)[1] - 255 * 100 / 129) < 6


def test_out_of_range_indices_are_input_errors(videos) -> None:
    with open_video(videos["thirty"], "pyav") as reader:
        with pytest.raises(InputError, match="outside the video"):
            reader.get_frames([0, 95])
        with pytest.raises(InputError):
            reader.get_frames([-1])
        assert reader.get_frames([]).shape == (0, 48, 64, 3)


def test_unknown_and_missing_decoders(videos) -> None:
    with pytest.raises(InputError, match="unknown decoder"):
        open_video(videos["thirty"], "opencv")
    assert DECODERS == ("auto", "decord", "pyav", "torchcodec", "torchcodec-cuda")
    if not HAVE_TORCHCODEC:  # the advice names commands that work (tspo-eval itself is not on PyPI)
        with pytest.raises(InputError, match=r"pip install torchcodec .*apt-get install ffmpeg"):
            open_video(videos["thirty"], "torchcodec")


def test_torchcodec_loads_where_ci_installs_it() -> None:
    """CI sets TSPO_EVAL_REQUIRE_TORCHCODEC=1 after installing torchcodec and FFmpeg's libraries, so
    the torchcodec backend is tested for real there instead of silently skipped."""
    if os.environ.get("TSPO_EVAL_REQUIRE_TORCHCODEC", "") not in ("", "0"):
        assert HAVE_TORCHCODEC, f"torchcodec does not load: {TORCHCODEC_PROBLEM}"
    if not HAVE_TORCHCODEC:
        pytest.skip(f"torchcodec not usable here ({TORCHCODEC_PROBLEM})")
    import torchcodec

    assert torchcodec.ffmpeg_major_version in range(4, 10)


def test_torchcodec_install_hint_names_working_commands() -> None:
    from tspo_eval.video.torchcodec_backend import INSTALL_HINT

    assert "pip install torchcodec" in INSTALL_HINT and "apt-get install ffmpeg" in INSTALL_HINT
    assert "tspo-eval[" not in INSTALL_HINT


@pytest.mark.parametrize("name", ["ntsc", "pal"])
def test_frame_times_are_presentation_times(videos, name: str) -> None:
    """Constant-rate files: frame i is shown at i / fps in every backend (30000/1001 exactly)."""
    n, fps, _ = VIDEOS[name]
    rate = float(Fraction(fps).limit_denominator(1001))
    indices = [0, 1, 30, n - 1, 30]
    for backend in BACKENDS:
        with open_video(videos[name], backend) as reader:
            times = reader.frame_times(indices)
            with pytest.raises(InputError, match="outside the video"):
                reader.frame_times([n])
        assert times.dtype == np.float64
        np.testing.assert_allclose(times, [i / rate for i in indices], atol=2e-5, err_msg=backend)


# -- bad files -----------------------------------------------------------------------------------

def _write_audio(path: Path, codec: str) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=16000)
        stream.layout = "mono"
        samples = 1152 if codec == "libmp3lame" else 1024
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * samples
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, make_video) -> dict[str, tuple[Path, str]]:
    from tspo_eval.testing import write_test_video

    root = tmp_path_factory.mktemp("bad_videos")
    files: dict[str, tuple[Path, str]] = {}
    files["missing"] = (root / "does_not_exist.mp4", "not found")
    (root / "empty.mp4").write_bytes(b"")
    files["empty"] = (root / "empty.mp4", "empty file")
    (root / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    files["text"] = (root / "notes.mp4", "not a video file")
    files["audio_m4a"] = (_write_audio(root / "speech.m4a", "aac"), "no video stream")
    files["audio_mp3"] = (_write_audio(root / "song.mp3", "libmp3lame"), "no video stream")
    whole = make_video("dec_for_truncation.mp4", n_frames=60).read_bytes()
    (root / "cut_tail.mp4").write_bytes(whole[: len(whole) // 2])  # index (moov) at the end is lost
    files["truncated_tail"] = (root / "cut_tail.mp4", "truncated or corrupt")
    faststart = root / "faststart.mp4"
    with av.open(str(faststart), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "30", "bf": "0"}
        rng = np.random.default_rng(0)
        for _ in range(120):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = faststart.read_bytes()
    (root / "cut_data.mp4").write_bytes(data[: len(data) // 2])  # index intact, frame data cut
    files["truncated_data"] = (root / "cut_data.mp4", "truncated")
    with av.open(str(root / "no_streams.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    files["zero_frames"] = (root / "no_streams.mp4", "no video stream")
    files["directory"] = (root, "not a regular file")
    write_test_video(root / "ok.mp4", n_frames=10)
    return files


@pytest.mark.parametrize(
    "kind",
    ["missing", "empty", "text", "audio_m4a", "audio_mp3", "truncated_tail", "truncated_data", "zero_frames", "directory"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files_raise_video_error_naming_the_path(bad_files, kind: str, backend: str) -> None:
    path, problem = bad_files[kind]
    with pytest.raises(VideoError) as info:
        with open_video(path, backend) as reader:
            reader.get_frames(candidate_grid(reader.metadata))
    assert str(path) in str(info.value)
    assert problem in info.value.problem
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("avg_fps", [0.0, float("nan"), float("inf")])
def test_bad_fps_from_a_backend_is_video_error(bad_files, monkeypatch, avg_fps: float) -> None:
    import decord

    from tspo_eval.video import probe, pyav_backend

    path = bad_files["directory"][0] / "ok.mp4"
    real = probe.probe(path)
    monkeypatch.setattr(pyav_backend, "probe", lambda p: real.__class__(**{**real.__dict__, "average_rate": avg_fps}))
    with pytest.raises(VideoError, match="frame rate") as info:
        open_video(path, "pyav")
    assert str(path) in str(info.value)
    monkeypatch.setattr(decord.VideoReader, "get_avg_fps", lambda self: avg_fps)
    with pytest.raises(VideoError, match="frame rate"):
        open_video(path, "decord")


def test_video_fingerprint_follows_content(tmp_path, make_video) -> None:
    src = make_video("dec_fp.mp4", n_frames=20)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(src.read_bytes())
    assert video_fingerprint(src) == video_fingerprint(copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert video_fingerprint(src) != video_fingerprint(copy)
    big = tmp_path / "big.bin"  # > 3 MiB: the sampled-blocks path
    payload = bytearray(np.random.default_rng(1).integers(0, 255, 5 * 2**20, dtype=np.uint8).tobytes())
    big.write_bytes(bytes(payload))
    before = video_fingerprint(big)
    payload[-10] ^= 0xFF  # inside the last MiB, always hashed
    big.write_bytes(bytes(payload))
    assert video_fingerprint(big) != before
    with pytest.raises(VideoError, match="not found"):
        video_fingerprint(tmp_path / "gone.mp4")


def test_metadata_to_dict_and_repr(videos) -> None:
    with open_video(videos["pal"], "pyav") as reader:
        d = reader.metadata.to_dict()
        assert "pyav" in repr(reader) or "PyAV" in repr(reader)
    assert d["n_frames"] == 130 and d["decoder"] == "pyav" and isinstance(VideoMetadata(**d), VideoMetadata)
