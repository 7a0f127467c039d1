"""``tspo-eval select``: JSON and table output, the PNG files, and one-line errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tspo_eval.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the keys of ``select --json``, in order (as written before SelectionResult derived its frame fields)
JSON_KEYS = ["video", "question", "frame_indices", "timestamps", "candidate_indices", "scores", "selected_positions",
             "strategy", "scorer", "num_candidates", "fps", "avg_fps", "n_frames", "agent_fingerprint",
             "clip_fingerprint", "feature_cache_hit", "candidate_timestamps", "decoder"]


@pytest.fixture(scope="module")
def video(make_video) -> Path:
    return make_video("select_30fps_12s.mp4", n_frames=360, fps=30.0, width=64, height=48)


@pytest.fixture(scope="module")
def plain_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tspo_eval.testing import build_tiny_tspo_checkpoint

    return build_tiny_tspo_checkpoint(tmp_path_factory.mktemp("plain_clip"), prefix=None)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["select", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def _assert_png(path: Path, min_size: tuple[int, int]) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 10, "image is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20


def test_json_and_pictures(capsys, tmp_path: Path, video: Path, tiny_agent_dir: Path) -> None:
    sheet, plot = tmp_path / "sheet.png", tmp_path / "plot.png"
    status, out, err = _run(
        capsys, video, "--question", "Where is the white bar?\nA. left\nB. right", "--agent", tiny_agent_dir,
        "--num-frames", 4, "--strategy", "bin-max", "--cache-dir", tmp_path / "cache", "--json",
        "--contact-sheet", sheet, "--plot", plot,
    )
    assert status == 0, err
    result = json.loads(out)
    for key in ("frame_indices", "timestamps", "candidate_indices", "scores", "strategy", "num_candidates", "fps"):
        assert key in result
    assert list(result) == JSON_KEYS  # the --json layout older tools read, unchanged
    assert result["candidate_indices"] == list(range(0, 360, 30)) and result["num_candidates"] == 12
    assert result["strategy"] == "bin-max" and result["fps"] == 1.0 and len(result["scores"]) == 12
    assert len(result["frame_indices"]) == 4 and result["frame_indices"] == sorted(result["frame_indices"])
    positions = [result["candidate_indices"].index(f) for f in result["frame_indices"]]
    assert result["timestamps"] == pytest.approx([f / 30.0 for f in result["frame_indices"]])
    # bin-max on 12 candidates, K=4: proposals 0,4,7,11 -> bins [0..2] [3..5] [6..9] [10..11]
    bins = [(0, 3), (3, 6), (6, 10), (10, 12)]
    scores = result["scores"]
    assert positions == [lo + int(np.argmax(scores[lo:hi])) for lo, hi in bins]
    _assert_png(sheet, (4 * 100, 60))
    _assert_png(plot, (400, 200))
    log_lines = err.strip().splitlines()  # default level INFO: which checkpoint, on which device; no DEBUG
    assert len(log_lines) == 1 and " INFO " in log_lines[0] and "loaded TSPO agent" in log_lines[0], err

    # a second run hits the feature cache and prints the table; --quiet leaves stderr empty
    status, out, err = _run(capsys, video, "-q", "Where is the white bar?", "--agent", tiny_agent_dir, "-k", 3,
                            "--cache-dir", tmp_path / "cache", "--quiet")
    assert status == 0 and err == ""
    lines = out.strip().splitlines()
    assert "3 of 12 candidates" in lines[0] and "features from cache" in lines[0]
    assert len(lines) == 2 + 3 and lines[1].split() == ["#", "frame", "time", "score"]

    # -v (before or after the command) adds the DEBUG lines, e.g. the cache hit
    for argv in (["select", "-v"], ["-v", "select"]):
        status = main([*argv, str(video), "-q", "Where is the white bar?", "--agent", str(tiny_agent_dir),
                       "-k", "3", "--cache-dir", str(tmp_path / "cache")])
        out, err = capsys.readouterr()
        assert status == 0 and " DEBUG " in err and "feature cache hit" in err, err


def test_clip_scorer_and_fewer_candidates_than_k(capsys, tmp_path: Path, video: Path, tiny_agent_dir: Path) -> None:
    status, out, err = _run(capsys, video, "-q", "a bar", "--agent", tiny_agent_dir, "--scorer", "clip",
                            "--num-frames", 64, "--no-cache", "--json", "--decoder", "pyav", "--strategy", "aks")
    assert status == 0, err
    result = json.loads(out)
    assert result["scorer"] == "clip" and result["frame_indices"] == list(range(0, 360, 30))  # T=12 <= K keeps all
    assert all(-1.0 <= s <= 1.0 for s in result["scores"])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--num-frames", "0"], "--num-frames must be a positive integer"),
        (["--num-frames", "-3"], "--num-frames must be a positive integer"),
        (["--strategy", "best"], "unknown strategy 'best'"),
        (["--decoder", "ffmpeg"], "unknown decoder 'ffmpeg'"),
        (["--scorer", "siglip"], "unknown scorer 'siglip'"),
        (["--fps", "0"], "--fps must be positive"),
        (["--plot", "/no/such/folder/p.png"], "folder /no/such/folder does not exist"),
    ],
)
def test_bad_options(capsys, video: Path, tiny_agent_dir: Path, extra: list[str], message: str) -> None:
    status, out, err = _run(capsys, video, "-q", "what?", "--agent", tiny_agent_dir, *extra)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith("tspo-eval select: error:")


def test_empty_question(capsys, video: Path, tiny_agent_dir: Path) -> None:
    status, _, err = _run(capsys, video, "-q", "   ", "--agent", tiny_agent_dir)
    assert status == 2 and "empty question" in err and err.count("\n") == 1


def _audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "audio-only"])
def test_bad_videos_name_the_file(capsys, tmp_path: Path, video: Path, tiny_agent_dir: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a video\n" * 20)
    elif kind == "truncated":
        path.write_bytes(video.read_bytes()[:4000])
    elif kind == "audio-only":
        _audio_only(path)
    status, out, err = _run(capsys, path, "-q", "what?", "--agent", tiny_agent_dir, "--no-cache")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err, err


def test_checkpoint_problems(capsys, tmp_path: Path, video: Path, plain_clip_dir: Path) -> None:
    status, _, err = _run(capsys, video, "-q", "what?", "--agent", plain_clip_dir, "--no-cache")
    assert status == 2 and "no selector weights" in err and str(plain_clip_dir) in err and err.count("\n") == 1
    status, _, err = _run(capsys, video, "-q", "what?", "--agent", tmp_path / "nowhere", "--no-cache")
    assert status == 2 and "no such file or folder" in err and err.count("\n") == 1
