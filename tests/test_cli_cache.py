"""``tspo-eval cache info|clear``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tspo_eval.cli import main
from tspo_eval.frame_index_cache import CacheKey, FeatureCache
from tspo_eval.frame_index_cache.feature_cache import ENV_VAR


def _fill(root: Path, n: int) -> int:
    cache = FeatureCache(root)
    for i in range(n):
        key = CacheKey(video_fingerprint=f"v1-{i}-video", candidate_stride=30, num_candidates=4 + i,
                       encoder_fingerprint="enc", decoder="pyav")
        cache.save(key, torch.ones(4 + i, 768))
    return cache.info()["bytes"]


def test_info_and_clear_with_cache_dir(tmp_path: Path, capsys) -> None:
    root = tmp_path / "features"
    size = _fill(root, 3)
    assert main(["cache", "info", "--cache-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"root": str(root), "entries": 3, "bytes": size,
                                                   "decoded_frame_files": 0, "decoded_frame_bytes": 0}
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert str(root) in out and "entries: 3" in out and f"({size} bytes)" in out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "removed 3 entries" in capsys.readouterr().out
    assert FeatureCache(root).info()["entries"] == 0
    assert main(["cache", "clear", "--cache-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == 0


def test_info_and_clear_include_the_training_frame_store(tmp_path: Path, capsys) -> None:
    """The decoded-frame store of ``tspo-eval train`` lives in the cache folder: counted and cleared."""
    from tspo_eval.testing.videos import write_test_video
    from tspo_eval.training.frame_store import DecodedFrameStore

    root = tmp_path / "features"
    _fill(root, 1)
    video = write_test_video(tmp_path / "v.mp4", n_frames=60)
    store = DecodedFrameStore.for_cache(FeatureCache(root))
    store.frames(video, [0, 30], [30])
    assert main(["cache", "info", "--cache-dir", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["decoded_frame_files"] == 1 and info["decoded_frame_bytes"] > 2 * 64 * 48 * 3
    assert main(["cache", "clear", "--cache-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed_decoded_frame_files"] == 1
    assert DecodedFrameStore.for_cache(FeatureCache(root)).info()["files"] == 0


def test_environment_variable_and_console_script(tmp_path: Path) -> None:
    root = tmp_path / "env_cache"
    _fill(root, 2)
    env = {**os.environ, ENV_VAR: str(root)}
    proc = subprocess.run(
        [sys.executable, "-m", "tspo_eval", "cache", "info", "--json"], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["root"] == str(root) and info["entries"] == 2


def test_bad_action_is_a_usage_error(tmp_path: Path, capsys) -> None:
    try:
        main(["cache", "purge", "--cache-dir", str(tmp_path)])
    except SystemExit as exc:
        assert exc.code == 2
    else:  # pragma: no cover
        raise AssertionError("argparse accepted an unknown action")
    assert "invalid choice" in capsys.readouterr().err
