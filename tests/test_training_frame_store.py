"""The decoded-frame store of training: exact frames, downscaling, broken files, file modes, and
training with it (same weights as without at native size; each video decoded once over two epochs)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

from tspo_eval.selector_options import SelectorOptions
from tspo_eval.training import TrainOptions
from tspo_eval.training.frame_store import (
    DEFAULT_FRAME_PIXELS,
    STORE_FOLDER,
    DecodedFrameStore,
    fit_pixels,
    scaled_size,
)
from tspo_eval.video import candidate_grid, decode_frames, open_video


@pytest.fixture(scope="module")
def clip_video(tmp_path_factory) -> Path:
    """A 6 s, 30 fps, 96x64 H.264 video with B-frames and a keyframe every 50 frames (6 candidates)."""
    from tspo_eval.testing import write_test_video

    return write_test_video(tmp_path_factory.mktemp("fs_videos") / "clip.mp4", n_frames=180, fps=30.0, width=96,
                            height=64, gop=50, bframes=2)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """Three different 20 s needle videos (20 candidates each), one question each."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark
    from tspo_eval.video import video_fingerprint

    ann, videos = build_synthetic_benchmark(tmp_path_factory.mktemp("fs_bench"), n_videos=3, questions_per_video=1,
                                            seconds=20, fps=4.0, seed=1)
    assert len({video_fingerprint(p) for p in videos.glob("*.mp4")}) == 3  # equal files would share a store file
    return ann, videos


def _grid(video: Path) -> np.ndarray:
    with open_video(video, "pyav") as reader:
        return candidate_grid(reader.metadata, 1.0)


def _warnings() -> tuple[list[str], int]:
    lines: list[str] = []
    return lines, logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")


def test_native_frames_are_bitwise_the_decoded_ones(clip_video, tmp_path) -> None:
    grid = _grid(clip_video)
    store = DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=0, chunk_size=3)  # several chunks
    numbers = grid[[5, 0, 3, 3, 1]]  # any order, repeats
    got = store.frames(clip_video, grid, numbers)
    assert got.dtype == np.uint8 and got.shape == (5, 64, 96, 3)
    assert np.array_equal(got, decode_frames(clip_video, numbers.tolist(), decoder="pyav"))
    assert np.array_equal(store.array(clip_video, grid), decode_frames(clip_video, grid.tolist(), decoder="pyav"))
    files = list((tmp_path / "store").glob("*.npy"))
    assert len(files) == 1 and files[0] == store.path_for(clip_video, grid)
    assert files[0].stat().st_size == 128 + len(grid) * 64 * 96 * 3  # T x H x W x 3 bytes + the .npy header
    assert store.fills == 1
    with pytest.raises(ValueError, match=r"clip\.mp4: frame number 7 is not in its candidate grid"):
        store.frames(clip_video, grid, [0, 7])


def test_store_file_name_follows_the_video_and_the_settings(clip_video, tmp_path) -> None:
    import shutil

    grid = _grid(clip_video)
    store = DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=0)
    name = store.path_for(clip_video, grid).name
    copy = Path(shutil.copy(clip_video, tmp_path / "copy.mp4"))
    assert store.path_for(copy, grid).name == name  # same content, same file
    assert DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=5000).path_for(clip_video, grid).name != name
    assert DecodedFrameStore(tmp_path / "store", decoder="auto", max_pixels=0).path_for(clip_video, grid).name != name
    assert store.path_for(clip_video, grid[:-1]).name != name
    with open(copy, "ab") as fh:  # the video changes: another file
        fh.write(b"\0" * 16)
    assert store.path_for(copy, grid).name != name


def test_downscaled_frames_fit_the_budget_and_keep_aspect(clip_video, tmp_path) -> None:
    grid = _grid(clip_video)
    budget = 1500  # 96x64 = 6144 pixels
    store = DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=budget)
    got = store.frames(clip_video, grid, grid)
    h, w = got.shape[1:3]
    assert h * w <= budget and h * w > 0.9 * budget
    assert abs(w / h - 96 / 64) <= 1.5 / min(h, w)  # aspect kept up to a pixel of rounding
    assert np.array_equal(got, fit_pixels(decode_frames(clip_video, grid.tolist(), decoder="pyav"), budget))
    # an area filter: the mean colour survives
    native = decode_frames(clip_video, grid.tolist(), decoder="pyav").astype(float)
    assert np.abs(got.astype(float).mean(axis=(1, 2)) - native.mean(axis=(1, 2))).max() < 2.0
    for size, limit in (((1080, 1920), DEFAULT_FRAME_PIXELS), ((1, 10000), 100), ((10000, 1), 100), ((7, 7), 48)):
        sh, sw = scaled_size(*size, limit)
        assert 1 <= sh * sw <= limit, (size, sh, sw)
    assert scaled_size(1080, 1920, 0) == (1080, 1920) and scaled_size(64, 96, 6144) == (64, 96)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape", "garbage"])
def test_a_broken_store_file_is_derived_again(clip_video, tmp_path, damage) -> None:
    grid = _grid(clip_video)
    root = tmp_path / "store"
    expected = DecodedFrameStore(root, decoder="pyav", max_pixels=0).array(clip_video, grid).copy()
    path = DecodedFrameStore(root, decoder="pyav", max_pixels=0).path_for(clip_video, grid)
    size = path.stat().st_size
    if damage == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    elif damage == "wrong_shape":
        np.save(path, np.zeros((len(grid) - 1, 64, 96, 3), dtype=np.uint8))
    else:
        path.write_bytes(b"not a numpy file at all")
    lines, sink = _warnings()
    try:
        store = DecodedFrameStore(root, decoder="pyav", max_pixels=0)
        got = store.frames(clip_video, grid, grid)
    finally:
        logger.remove(sink)
    assert np.array_equal(got, expected) and store.fills == 1 and path.stat().st_size == size
    assert len(lines) == 1 and str(clip_video) in lines[0] and "decoding the video again" in lines[0]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_store_files_honour_the_umask(clip_video, tmp_path, umask, mode) -> None:
    grid = _grid(clip_video)
    old = os.umask(umask)
    try:
        store = DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=0)
        store.frames(clip_video, grid, grid[:2])
    finally:
        os.umask(old)
    assert store.path_for(clip_video, grid).stat().st_mode & 0o777 == mode


def test_an_unwritable_store_folder_falls_back_to_decoding(clip_video, tmp_path) -> None:
    grid = _grid(clip_video)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    lines, sink = _warnings()
    try:
        store = DecodedFrameStore(blocker / "store", decoder="pyav", max_pixels=0)
        first = store.frames(clip_video, grid, grid[[1, 4]])
        again = store.frames(clip_video, grid, grid[[2]])
    finally:
        logger.remove(sink)
    assert np.array_equal(first, decode_frames(clip_video, grid[[1, 4]].tolist(), decoder="pyav"))
    assert np.array_equal(again, decode_frames(clip_video, grid[[2]].tolist(), decoder="pyav"))
    assert len(lines) == 1 and str(clip_video) in lines[0] and store.fills == 0


def test_open_maps_are_bounded(synthetic, tmp_path) -> None:
    videos = sorted(Path(synthetic[1]).glob("*.mp4"))
    store = DecodedFrameStore(tmp_path / "store", decoder="pyav", max_pixels=0, max_open=2)
    for video in videos + videos[:1]:
        grid = _grid(video)
        assert np.array_equal(store.frames(video, grid, grid[[0, -1]]),
                              decode_frames(video, grid[[0, -1]].tolist(), decoder="pyav"))
    assert len(store._open) == 2 and store.fills == len(videos)  # the reopened file was not decoded again


# -- training with the store -----------------------------------------------------------------------

def _options(tiny_agent_dir, synthetic, out: Path, cache: Path, **kw) -> TrainOptions:
    values = {"selector": SelectorOptions(agent=str(tiny_agent_dir), decoder="pyav", cache_dir=str(cache)),
              "prompts_per_step": 3, "group_size": 4, "num_frames": 4, "save_every": 100, "progress": False}
    values.update(kw)
    return TrainOptions("synthetic", str(synthetic[0]), str(synthetic[1]), "synthetic-reader", str(out), **values)


def test_training_with_the_store_gives_the_weights_of_training_without(tiny_agent_dir, synthetic, tmp_path) -> None:
    from safetensors.torch import load_file

    from tspo_eval.training.trainer import train

    kw = {"steps": 3, "needles": True, "off_policy": "shaping", "seed": 4}  # composites: frames of several videos
    with_store = _options(tiny_agent_dir, synthetic, tmp_path / "store", tmp_path / "cache", frame_pixels=0, **kw)
    without = _options(tiny_agent_dir, synthetic, tmp_path / "plain", tmp_path / "cache", frame_store=False, **kw)
    assert with_store.settings() == without.settings()  # native frames: the switch is no setting
    assert "frame_pixels" in _options(tiny_agent_dir, synthetic, tmp_path / "x", tmp_path / "c", **kw).settings()
    a, b = train(with_store), train(without)
    assert len(list((tmp_path / "cache" / STORE_FOLDER).glob("*.npy"))) == 3
    ours, theirs = (load_file(str(tmp_path / run / "selector.safetensors")) for run in ("store", "plain"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    strip = lambda records: [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in records]
    assert strip(a.metrics) == strip(b.metrics) and a.metrics[0]["r_t"] > 0


def test_each_video_is_decoded_once_over_two_epochs(tiny_agent_dir, synthetic, tmp_path, monkeypatch) -> None:
    import tspo_eval.video as video_io
    from tspo_eval.training.trainer import train

    opens: dict[str, int] = {}
    real_open = video_io.open_video

    def counting_open(path, *args, **kwargs):
        opens[Path(path).name] = opens.get(Path(path).name, 0) + 1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(video_io, "open_video", counting_open)  # every decode of the store and of decode_frames
    names = sorted(p.name for p in Path(synthetic[1]).glob("*.mp4"))
    said: list[str] = []
    sink = logger.add(lambda m: said.append(m.record["message"]), level="INFO",
                      filter=lambda r: "decoded-frame store" in r["message"])
    try:
        result = train(_options(tiny_agent_dir, synthetic, tmp_path / "store", tmp_path / "cache", epochs=2.0))
    finally:
        logger.remove(sink)
    assert result.steps == 2 and sum(r["prompts"] for r in result.metrics) == 6
    assert opens == {name: 1 for name in names}
    root = str(tmp_path / "cache" / STORE_FOLDER)  # where it lives and its size: at set-up and after the run
    assert len(said) == 2 and root in said[0] and "0 files" in said[0] and said[1].endswith("holds 3 files, 0.00 GiB")
    opens.clear()
    train(_options(tiny_agent_dir, synthetic, tmp_path / "plain", tmp_path / "cache", epochs=2.0, frame_store=False))
    assert opens == {name: 2 for name in names}  # without the store: once per prompt


def test_cli_switches_reach_the_options(tiny_agent_dir, synthetic, tmp_path) -> None:
    import argparse

    from tspo_eval.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.register(parser)
    base = ["synthetic", str(synthetic[0]), "--videos", str(synthetic[1]), "--answerer", "synthetic-reader",
            "--out", str(tmp_path / "o")]
    default = train_cli.options_from_args(parser.parse_args(base))
    assert default.frame_store is True and default.frame_pixels == DEFAULT_FRAME_PIXELS
    off = train_cli.options_from_args(parser.parse_args(base + ["--no-frame-store", "--frame-pixels", "0"]))
    assert off.frame_store is False and off.frame_pixels == 0
    from tspo_eval.errors import InputError

    with pytest.raises(InputError, match="--frame-pixels"):
        train_cli.options_from_args(parser.parse_args(base + ["--frame-pixels", "-1"])).validated()
