"""FeatureCache: keys, round trip, corrupt/stale entries, atomic and concurrent writes, location."""
from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from loguru import logger

from tspo_eval.frame_index_cache import CacheKey, FeatureCache, default_cache_root
from tspo_eval.frame_index_cache.feature_cache import ENV_VAR

KEY = CacheKey(video_fingerprint="v1-1234-abcd", candidate_stride=30, num_candidates=12, encoder_fingerprint="enc-fp",
               decoder="decord")


@pytest.fixture()
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "features")


@pytest.fixture()
def warnings_logged():
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


def _features(n: int = 12, dim: int = 768, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def _saved(cache: FeatureCache, key: CacheKey = KEY,
           feats: torch.Tensor | None = None) -> tuple[CacheKey, torch.Tensor]:
    feats = _features(key.num_candidates) if feats is None else feats
    cache.save(key, feats, extra={"video": "clip.mp4"})
    return key, feats


def _rewrite_header(path: Path, edit) -> None:
    """Apply ``edit(header_dict)`` to a safetensors file, keeping its tensor bytes."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


def test_key_is_deterministic_and_depends_on_every_part(cache: FeatureCache) -> None:
    key = KEY.digest
    assert key == dataclasses.replace(KEY).digest and len(key) == 40
    assert cache.path_for(KEY) == cache.root / f"{key}.safetensors"
    changes = [{"video_fingerprint": "v1-1234-abce"}, {"candidate_stride": 60}, {"num_candidates": 13},
               {"decoder": "pyav"}, {"encoder_fingerprint": "enc-fq"}]
    variants = [dataclasses.replace(KEY, **change) for change in changes]
    assert len({v.digest for v in variants} | {key}) == 6


def test_key_keeps_the_format_1_file_names_and_metadata(cache: FeatureCache) -> None:
    """Entries written before CacheKey existed stay hits: same digest (the name the old
    ``FeatureCache.key(video_fp, stride, n, "enc-fp|decoder=decord")`` gave), same metadata names."""
    assert KEY.digest == "155612f0b3fb5faabb37db9aafd9d4f20c2b1bfd"
    assert KEY.metadata() == {"video_fingerprint": "v1-1234-abcd", "candidate_stride": "30", "num_candidates": "12",
                              "encoder_fingerprint": "enc-fp|decoder=decord"}
    key, _ = _saved(cache)
    data = cache.path_for(key).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    stored = json.loads(data[8 : 8 + length])["__metadata__"]
    assert {k: stored[k] for k in KEY.metadata()} == KEY.metadata()
    assert stored["key"] == KEY.digest and stored["video"] == "clip.mp4" and stored["format_version"] == "1"


def test_key_is_frozen_keyword_only_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        KEY.decoder = "pyav"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CacheKey("v1-1234-abcd", 30, 12, "enc-fp", "decord")  # type: ignore[misc]
    from_numpy = dataclasses.replace(KEY, candidate_stride=np.int64(30), num_candidates=np.int64(12))
    assert from_numpy == KEY and type(from_numpy.candidate_stride) is int and from_numpy.digest == KEY.digest
    assert hash(from_numpy) == hash(KEY)  # usable as a dict key / set member


def test_round_trip_miss_info_and_clear(cache: FeatureCache) -> None:
    assert cache.load(KEY) is None  # miss, root not even created
    assert cache.info() == {"root": str(cache.root), "entries": 0, "bytes": 0}
    key, feats = _saved(cache)
    loaded = cache.load(key)
    assert loaded is not None and loaded.dtype == torch.float32
    torch.testing.assert_close(loaded, feats, rtol=0, atol=0)
    other_key = CacheKey(video_fingerprint="v1-9-ff", candidate_stride=25, num_candidates=3, encoder_fingerprint="enc",
                         decoder="pyav")
    other, _ = _saved(cache, other_key, _features(3, 512))  # any feature width
    assert cache.load(other).shape == (3, 512)
    info = cache.info()
    assert info["entries"] == 2 and info["bytes"] == sum(p.stat().st_size for p in cache.entries())
    assert not list(cache.root.glob(".*.tmp"))  # no temporary files left behind
    assert cache.clear() == 2 and cache.info()["entries"] == 0 and cache.load(key) is None


def test_save_checks_metadata_against_the_key(cache: FeatureCache) -> None:
    """The metadata comes from the key itself; extra entries cannot replace a key part."""
    with pytest.raises(ValueError, match="key parts"):
        cache.save(KEY, _features(), extra={"candidate_stride": "31"})
    with pytest.raises(ValueError, match="key parts"):
        cache.save(KEY, _features(), extra={"key": "0" * 40})
    with pytest.raises(ValueError, match="rows"):
        cache.save(KEY, _features(11))
    with pytest.raises(ValueError, match=r"\[T, D\]"):
        cache.save(KEY, torch.zeros(12))
    assert cache.info()["entries"] == 0


def _expect_discarded(cache: FeatureCache, key: CacheKey, warnings_logged: list[str], reason: str) -> None:
    assert cache.load(key) is None
    assert not cache.path_for(key).exists()  # removed, so the next run recomputes and rewrites it
    assert any(reason in m and key.digest in m for m in warnings_logged), warnings_logged


@pytest.mark.parametrize("keep", [0, 5, 60, 200, -100, -1])
def test_truncated_entry_is_discarded(cache: FeatureCache, warnings_logged, keep: int) -> None:
    key, _ = _saved(cache)
    path = cache.path_for(key)
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    _expect_discarded(cache, key, warnings_logged, "bad entry")


def test_flipped_metadata_is_discarded(cache: FeatureCache, warnings_logged) -> None:
    key, _ = _saved(cache)
    _rewrite_header(cache.path_for(key), lambda h: h["__metadata__"].update(candidate_stride="31"))
    _expect_discarded(cache, key, warnings_logged, "do not match the key")


def test_flipped_value_byte_is_discarded(cache: FeatureCache, warnings_logged) -> None:
    key, _ = _saved(cache)
    path = cache.path_for(key)
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01
    path.write_bytes(bytes(data))
    _expect_discarded(cache, key, warnings_logged, "checksum")


def test_stale_format_version_is_discarded(cache: FeatureCache, warnings_logged) -> None:
    key, _ = _saved(cache)
    _rewrite_header(cache.path_for(key), lambda h: h["__metadata__"].update(format_version="0"))
    _expect_discarded(cache, key, warnings_logged, "stale format")


def test_entry_under_another_key_is_discarded(cache: FeatureCache, warnings_logged) -> None:
    key, _ = _saved(cache)
    stale_key = dataclasses.replace(KEY, encoder_fingerprint="older-encoder")
    cache.path_for(key).rename(cache.path_for(stale_key))
    _expect_discarded(cache, stale_key, warnings_logged, "records key")


def test_wrong_shape_and_non_finite_values_are_discarded(cache: FeatureCache, warnings_logged) -> None:
    key, _ = _saved(cache)
    _rewrite_header(cache.path_for(key), lambda h: h["__metadata__"].update(feature_dim="512"))
    _expect_discarded(cache, key, warnings_logged, "shape")
    bad = _features()
    bad[3, 7] = float("nan")
    key, _ = _saved(cache, feats=bad)
    _expect_discarded(cache, key, warnings_logged, "non-finite")


def test_unwritable_root_logs_and_carries_on(tmp_path: Path, warnings_logged) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = FeatureCache(blocker / "features")
    key, _ = _saved(cache)  # must not raise: the cache is an optimisation
    assert cache.load(key) is None
    assert any("cannot write" in m for m in warnings_logged)


def _writer(root: str, rounds: int, seed: int) -> None:
    cache = FeatureCache(root)
    feats = _features(KEY.num_candidates, seed=0)
    for _ in range(rounds):
        cache.save(KEY, feats)


def _reader(root: str, rounds: int, queue) -> None:
    cache = FeatureCache(root)
    expected = _features(KEY.num_candidates, seed=0)
    seen = {"hit": 0, "miss": 0, "miss_after_hit": 0, "bad": 0}
    for _ in range(rounds):
        got = cache.load(KEY)
        if got is None:
            seen["miss_after_hit" if seen["hit"] else "miss"] += 1
        elif torch.equal(got, expected):
            seen["hit"] += 1
        else:
            seen["bad"] += 1
    queue.put(seen)


def test_concurrent_writers_and_reader_of_one_key(cache: FeatureCache, warnings_logged) -> None:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(cache.root), 25, i)) for i in range(4)]
    procs.append(ctx.Process(target=_reader, args=(str(cache.root), 120, queue)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    seen = queue.get(timeout=10)
    # once the entry exists it is always complete: never a partial file (a miss) or a mixed one
    assert seen["bad"] == 0 and seen["miss_after_hit"] == 0 and seen["hit"] > 0, seen
    torch.testing.assert_close(cache.load(KEY), _features(KEY.num_candidates, seed=0), rtol=0, atol=0)
    assert cache.info()["entries"] == 1 and not list(cache.root.glob(".*.tmp"))
    assert not [m for m in warnings_logged if "bad entry" in m]


def test_default_root_env_and_platform_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "from_env"))
    assert FeatureCache().root == tmp_path / "from_env" == default_cache_root()
    assert FeatureCache(tmp_path / "explicit").root == tmp_path / "explicit"
    monkeypatch.delenv(ENV_VAR)
    root = FeatureCache().root
    assert root.name == "features" and root.parent.name == "tspo-eval"


@pytest.mark.parametrize("bad_part", [{"video_fingerprint": ""}, {"encoder_fingerprint": ""}, {"decoder": ""},
                                      {"candidate_stride": 0}, {"candidate_stride": 2.5}, {"num_candidates": -1},
                                      {"num_candidates": True}, {"video_fingerprint": None}])
def test_bad_keys_are_rejected(cache: FeatureCache, bad_part: dict) -> None:
    with pytest.raises(ValueError):
        cache.load(dataclasses.replace(KEY, **bad_part))


@pytest.mark.parametrize("not_a_key", ["", "../x", "a/b", ".hidden", KEY.digest])
def test_plain_string_keys_are_refused(cache: FeatureCache, not_a_key: str) -> None:
    with pytest.raises(TypeError, match="CacheKey"):
        cache.load(not_a_key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CacheKey"):
        cache.save(not_a_key, _features())  # type: ignore[arg-type]
