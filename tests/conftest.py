"""Shared fixtures: tiny real checkpoints and small real videos, built once per session."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TSPO_EVAL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (annotations, published indices); skips the test when it is absent."""
    if not (SHARED_DATA / "annotations").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TSPO checkpoint in the TSPO-0.4B layout (CLIP + ``selector.*``)."""
    from tspo_eval.testing import build_tiny_tspo_checkpoint

    return build_tiny_tspo_checkpoint(tmp_path_factory.mktemp("tiny_tspo"), seed=0)


@pytest.fixture(scope="session")
def tiny_agent(tiny_agent_dir: Path):
    """The tiny TSPO checkpoint loaded on CPU (shared by tests that only read it)."""
    from tspo_eval.agent import TemporalAgent

    return TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu")


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir: Path) -> Callable[..., Path]:
    """``make_video(name, **write_test_video_kwargs) -> Path``; files are cached per name."""
    from tspo_eval.testing import write_test_video

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        path = video_dir / name
        if not path.exists():
            write_test_video(path, **kwargs)
        return path

    return _make
