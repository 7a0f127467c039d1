"""The one atomic-write helper: modes from the umask, all-or-nothing replacement, no leftovers;
and the files the package writes through it (feature cache, merged index files, TSVs) are readable
by the group and others under umask 022."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from tspo_eval.atomic_files import (
    atomic_output,
    atomic_write,
    current_umask,
    default_file_mode,
)
from tspo_eval.frame_index_cache import CacheKey, FeatureCache
from tspo_eval.frame_index_cache.index_store import (
    IndexRecord,
    IndexWriter,
    merge_index_files,
    write_index,
)


@pytest.fixture
def umask():
    """Run a test under a chosen umask, restoring the old one afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _record(qid: str) -> IndexRecord:
    return IndexRecord(benchmark="synthetic", question_id=qid, video="v.mp4", n_frames=100, avg_fps=10.0,
                       candidate_stride=10, frame_indices=[0, 10], timestamps=[0.0, 1.0], strategy="topk",
                       scorer="tspo", agent_fingerprint="a", clip_fingerprint="c")


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_mode_follows_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    assert current_umask() == mask
    assert default_file_mode() == expected
    target = tmp_path / "sub" / "file.txt"
    atomic_write(target, "héllo")
    assert target.read_bytes() == "héllo".encode("utf-8")
    assert _mode(target) == expected


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as handle:
            handle.write(b"half of the new cont")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_replacement_is_a_rename_not_an_in_place_rewrite(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    atomic_write(target, b"first")
    reader = target.open("rb")  # a reader holding the old file keeps seeing it whole
    atomic_write(target, b"second, longer")
    assert reader.read() == b"first"
    reader.close()
    assert target.read_bytes() == b"second, longer"


def test_explicit_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write(target, b"x", mode=0o600)
    assert _mode(target) == 0o600


def test_cache_entries_and_index_files_are_group_and_world_readable(tmp_path: Path, umask) -> None:
    umask(0o022)
    cache = FeatureCache(tmp_path / "cache")
    key = CacheKey(video_fingerprint="video-fp", candidate_stride=10, num_candidates=4, encoder_fingerprint="encoder-fp",
                   decoder="pyav")
    cache.save(key, torch.zeros(4, 8))
    [entry] = cache.entries()
    assert _mode(entry) == 0o644

    merged = write_index(tmp_path / "index.jsonl", [_record("q1")])
    assert _mode(merged) == 0o644

    shard = tmp_path / "shard.rank0.jsonl"
    writer = IndexWriter(shard)
    writer.write(_record("q2"))
    writer.close()
    assert _mode(shard) == 0o644
    out = tmp_path / "merged.jsonl"
    merge_index_files([merged, shard], out)
    assert _mode(out) == 0o644


def test_group_writable_umask_gives_group_writable_files(tmp_path: Path, umask) -> None:
    umask(0o002)  # a team's shared cache folder: members may also replace each other's entries
    cache = FeatureCache(tmp_path / "cache")
    key = CacheKey(video_fingerprint="video-fp", candidate_stride=10, num_candidates=4, encoder_fingerprint="encoder-fp",
                   decoder="pyav")
    cache.save(key, torch.zeros(4, 8))
    [entry] = cache.entries()
    assert _mode(entry) == 0o664
