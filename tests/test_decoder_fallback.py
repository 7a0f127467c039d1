"""``decoder="auto"``: decord, and PyAV for the files decord cannot read; guards against decord's
hang; AV1/VP9/HEVC/29.97 fps/B-frame files written here; ``tspo-eval select`` agrees with ``--decoder pyav``."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from tspo_eval.cli import main
from tspo_eval.errors import VideoError
from tspo_eval.testing.videos import available_encoder, write_test_video
from tspo_eval.video import candidate_grid, open_video

try:
    import torchcodec.decoders  # noqa: F401

    HAVE_TORCHCODEC = True
except Exception:
    HAVE_TORCHCODEC = False

AV1 = available_encoder("av1")
# name -> (file name, write_test_video kwargs); the container follows the extension
KINDS = {
    "av1": ("av1.mp4", dict(codec=AV1 or "libaom-av1", n_frames=75, fps=25.0, gop=50)),
    "vp9": ("vp9.webm", dict(codec="libvpx-vp9", n_frames=90, fps=30.0, gop=45)),
    "hevc": ("hevc.mkv", dict(codec="libx265", n_frames=90, fps=30.0, gop=30)),
    # x265 writes an open GOP by default when it uses B-frames: decord's seeks go wrong there
    "hevc_open_gop": ("hevc_open_gop.mkv", dict(codec="libx265", n_frames=90, fps=30.0, gop=30, bframes=2)),
    "ntsc": ("ntsc.mp4", dict(n_frames=120, fps=30000 / 1001, gop=250, bframes=3)),
    "vfr": ("vfr.mp4", dict(n_frames=60, fps=15.0, frame_times=[i / 30 for i in range(30)]
                            + [1.0 + 0.1 * i for i in range(30)])),
}


#: the kinds decord refuses (auto decodes them with PyAV)
NOT_DECORD = {"av1", "hevc_open_gop"}
#: the kinds auto gives to decord: neither H.264 nor HEVC (those go to PyAV's sparse decoding)
AUTO_DECORD = {"vp9"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    import av

    root = tmp_path_factory.mktemp("codecs")
    out = {}
    for kind, (name, kwargs) in KINDS.items():
        if kwargs.get("codec", "libx264") not in av.codecs_available:
            continue
        out[kind] = write_test_video(root / name, width=64, height=48, **kwargs)
    return out


@pytest.fixture(scope="module")
def lead_in(tmp_path_factory) -> Path:
    """An MP4 whose edit list drops its first 40 frames (as cutting without re-encoding leaves)."""
    return write_test_video(tmp_path_factory.mktemp("edit_list") / "cut_copy.mp4", n_frames=150, fps=30.0,
                            gop=250, dropped_lead_in=40)


@pytest.fixture()
def warnings() -> list[str]:
    """WARNING lines logged during the test; files reported by earlier tests are forgotten."""
    from tspo_eval.video import auto

    auto._reported.clear()
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).strip()), level="WARNING", format="{level} {message}")
    yield lines
    logger.remove(sink)


def _need(files: dict[str, Path], kind: str) -> Path:
    if kind not in files:
        pytest.skip(f"this PyAV build has no encoder for {kind}")
    return files[kind]


def test_av1_decord_refuses_auto_falls_back_once(files, warnings) -> None:
    path = _need(files, "av1")
    with pytest.raises(VideoError, match="no decoder for this video's codec.*AV1.*--decoder auto or pyav") as info:
        open_video(path, "decord")
    assert str(path) in str(info.value)
    warnings.clear()
    with open_video(path, "auto") as auto, open_video(path, "pyav") as pyav:
        assert auto.metadata.decoder == "pyav" and auto.metadata == pyav.metadata
        grid = candidate_grid(auto.metadata)
        np.testing.assert_array_equal(auto.get_frames(grid), pyav.get_frames(grid))
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("WARNING") and str(path) in warnings[0] and "falling back to PyAV" in warnings[0]


@pytest.mark.parametrize("kind", ["vp9", "hevc", "ntsc", "vfr"])
def test_auto_picks_the_backend_by_codec(files, warnings, kind: str) -> None:
    """H.264 and HEVC: PyAV (exact sparse decoding, faster than decord); VP9: decord; no warning."""
    with open_video(_need(files, kind), "auto") as reader:
        assert reader.metadata.decoder == ("decord" if kind in AUTO_DECORD else "pyav")
        reader.get_frames(candidate_grid(reader.metadata))
    assert warnings == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_backends_agree_frame_for_frame(files, kind: str) -> None:
    """Same frame count, grid, frame times and pixels, whichever backend decodes."""
    path = _need(files, kind)
    backends = ["auto", "pyav"] + (["decord"] if kind not in NOT_DECORD else []) + (["torchcodec"] if HAVE_TORCHCODEC else [])
    if kind in NOT_DECORD:
        from tspo_eval.video.decord_backend import DecordUnsupported

        with pytest.raises(DecordUnsupported, match="--decoder auto or pyav"):
            open_video(path, "decord")
    seen = {}
    for backend in backends:
        with open_video(path, backend) as reader:
            meta = reader.metadata
            grid = candidate_grid(meta)
            probe = np.unique(np.r_[grid, [1, meta.n_frames - 1, meta.n_frames // 2]])
            seen[backend] = (meta.n_frames, grid.tolist(), reader.frame_times(probe), reader.get_frames(probe[::-1]))
    ref = seen["pyav"]
    for backend, (n, grid, times, frames) in seen.items():
        assert (n, grid) == ref[:2], backend
        np.testing.assert_allclose(times, ref[2], atol=1e-4, err_msg=backend)
        diff = np.abs(frames.astype(np.int16) - ref[3].astype(np.int16))
        assert diff.mean() < 0.5 and diff.max() <= 8, (backend, diff.mean(), diff.max())


def test_open_gop_hevc_decord_guard(files, warnings) -> None:
    """decord returns wrong frames after seeking in an open-GOP stream; the guard sends it to PyAV,
    whose frames follow the painted ramp (frame i has red level 255 * i / 89)."""
    path = _need(files, "hevc_open_gop")
    with pytest.raises(VideoError, match=r"open GOP \(\d+ frames are shown before the keyframe"):
        open_video(path, "decord")
    with open_video(path, "auto") as reader:
        assert reader.metadata.decoder == "pyav"
        frames = reader.get_frames([89, 60, 30, 0])
    levels = frames[:, 2:6, 2:6, 0].reshape(4, -1).mean(axis=1) * 89 / 255
    assert np.abs(levels - [89, 60, 30, 0]).max() < 6, levels
    assert warnings == []  # HEVC goes to PyAV directly: decord is never tried


def test_edit_list_file_decord_guard_and_pyav_numbering(lead_in, warnings) -> None:
    """decord counts the 40 dropped frames (and hangs seeking); the guard refuses the file at once,
    auto reads it with PyAV, which numbers frames as FFmpeg presents them (as torchcodec does)."""
    with pytest.raises(VideoError, match="40 packets lie before the stream start"):
        open_video(lead_in, "decord")
    with open_video(lead_in, "auto") as reader:
        assert reader.metadata.decoder == "pyav" and reader.metadata.n_frames == 110
        first = reader.get_frames([0])[0]
        np.testing.assert_allclose(reader.frame_times([0, 1, 109]), [0.0, 1 / 30, 109 / 30], atol=1e-6)
    # frame 0 is the first presented frame: source frame 40 of the ramp painted by write_test_video
    assert abs(float(first[2:6, 2:6, 0].mean()) - 255 * 40 / 149) < 8
    assert warnings == []  # H.264 goes to PyAV directly: decord is never tried
    if HAVE_TORCHCODEC:
        with open_video(lead_in, "torchcodec") as reader:
            assert reader.metadata.n_frames == 110
            np.testing.assert_array_equal(reader.get_frames([0]), first[None])


_BOUNDED_RUN = textwrap.dedent("""
    import json, sys, time
    start = time.perf_counter()
    from tspo_eval.errors import VideoError
    from tspo_eval.video import candidate_grid, iter_frame_chunks, open_video
    out = {}
    try:
        with open_video(sys.argv[1], sys.argv[2]) as reader:
            grid = candidate_grid(reader.metadata)
            out["frames"] = sum(len(c) for c in iter_frame_chunks(reader, grid, 4, pause_between=True))
            out["decoder"] = reader.metadata.decoder
    except VideoError as exc:
        out["error"] = str(exc)
    out["seconds"] = time.perf_counter() - start
    with open("/proc/self/status") as status:  # VmHWM: this program's peak RSS (ru_maxrss keeps the parent's)
        out["maxrss_mib"] = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    print(json.dumps(out))
""")


def _bounded(path: Path, decoder: str, timeout: float = 120.0) -> dict:
    """Decode ``path``'s candidate grid in a fresh process; a hang fails the test instead of the suite."""
    try:
        done = subprocess.run([sys.executable, "-c", _BOUNDED_RUN, str(path), decoder], capture_output=True,
                              text=True, timeout=timeout, env={"OMP_NUM_THREADS": "1", "PATH": ""}, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"decoding {path.name} with {decoder} did not finish within {timeout:.0f} s (decord's retry loop?)")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    """Files whose end is broken: 320x240, 300 frames, keyframes every 250 frames."""
    import av

    root = tmp_path_factory.mktemp("broken_ends")
    whole = root / "whole.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as container:  # index first, then data
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "250", "bf": "0"}
        for _ in range(300):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = whole.read_bytes()
    keep = int(len(data) * 0.6)
    (root / "cut.mp4").write_bytes(data[:keep])  # a download torn off: the last 40% of the frames are gone
    (root / "zeroed.mp4").write_bytes(data[:keep] + bytes(len(data) - keep))  # same size, tail overwritten
    return {"cut": root / "cut.mp4", "zeroed": root / "zeroed.mp4"}


@pytest.mark.parametrize("kind", ["cut", "zeroed"])
@pytest.mark.parametrize("decoder", ["auto", "decord", "pyav"])
def test_broken_end_fails_fast_with_bounded_memory(broken, kind: str, decoder: str) -> None:
    out = _bounded(broken[kind], decoder)
    assert "error" in out, out
    assert str(broken[kind]) in out["error"] and ("truncated" in out["error"] or "decoding failed" in out["error"])
    assert out["seconds"] < 30, out
    assert out["maxrss_mib"] < 600, out  # a few decoded 320x240 frames, not a runaway queue


@pytest.mark.parametrize("decoder", ["auto", "decord"])
def test_edit_list_file_cannot_hang_decord(tmp_path, decoder: str) -> None:
    """Unguarded, decord's ``get_batch`` of this file's 1 fps grid spins at 100% CPU for good
    (measured: no return after 120 s); guarded, decord refuses it and auto decodes with PyAV."""
    path = write_test_video(tmp_path / "cut_copy.mp4", n_frames=300, fps=30.0, width=320, height=240, gop=250,
                            dropped_lead_in=200)
    out = _bounded(path, decoder, timeout=90)
    assert out["seconds"] < 30 and out["maxrss_mib"] < 600, out
    if decoder == "auto":
        assert out.get("decoder") == "pyav" and out.get("frames") == 4, out  # frames 0, 30, 60, 90 of 100
    else:
        assert "packets lie before the stream start" in out.get("error", ""), out


def test_decode_failure_mid_stream_hands_over_to_pyav(files, warnings, monkeypatch) -> None:
    """decord opens a file but fails while decoding: auto re-reads the same frame numbers with PyAV."""
    from tspo_eval.video.decord_backend import DecordReader

    path = _need(files, "vp9")  # a codec auto gives to decord

    def broken_read(self, indices):
        raise VideoError(self.metadata.path, "decoding failed (simulated)")

    monkeypatch.setattr(DecordReader, "_read_sorted", broken_read)
    with open_video(path, "auto") as reader:
        assert reader.metadata.decoder == "decord"
        frames = reader.get_frames([80, 0, 30])
        assert reader.metadata.decoder == "pyav"
    monkeypatch.undo()
    with open_video(path, "pyav") as pyav:
        np.testing.assert_array_equal(frames, pyav.get_frames([80, 0, 30]))
    assert len(warnings) == 1 and "decord failed while decoding (decoding failed (simulated))" in warnings[0]


def _select(capsys, video: Path, agent_dir: Path, *extra: str) -> dict:
    status = main(["select", str(video), "-q", "Where is the white bar?", "--agent", str(agent_dir), "-k", "3",
                   "--no-cache", "--json", *extra])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_select_default_decoder_agrees_with_pyav(files, capsys, tiny_agent_dir: Path, kind: str) -> None:
    """``tspo-eval select --json`` with the default decoder works on each file and picks the same
    frames at the same times as ``--decoder pyav``."""
    path = _need(files, kind)
    default = _select(capsys, path, tiny_agent_dir)
    pyav = _select(capsys, path, tiny_agent_dir, "--decoder", "pyav")
    assert default["decoder"] == ("decord" if kind in AUTO_DECORD else "pyav") and pyav["decoder"] == "pyav"
    for key in ("frame_indices", "candidate_indices", "selected_positions", "n_frames"):
        assert default[key] == pyav[key], key
    assert default["timestamps"] == pytest.approx(pyav["timestamps"], abs=1e-4)
    assert default["scores"] == pytest.approx(pyav["scores"], abs=1e-3)
    assert len(default["frame_indices"]) == 3


def test_select_cli_logs_one_fallback_line(files, capsys, tmp_path: Path, tiny_agent_dir: Path) -> None:
    """The CLI opens the AV1 file three times (probe, candidates, contact sheet): one WARNING line."""
    import shutil

    path = shutil.copy(_need(files, "av1"), tmp_path / "fresh_av1.mp4")
    status = main(["select", str(path), "-q", "Where is the white bar?", "--agent", str(tiny_agent_dir), "-k", "2",
                   "--no-cache", "--json", "--contact-sheet", str(tmp_path / "sheet.png")])
    out, err = capsys.readouterr()
    assert status == 0, err
    fallback = [line for line in err.splitlines() if "falling back to PyAV" in line]
    assert len(fallback) == 1 and "WARNING" in fallback[0] and "fresh_av1.mp4" in fallback[0], err
    assert json.loads(out)["decoder"] == "pyav" and (tmp_path / "sheet.png").stat().st_size > 0
