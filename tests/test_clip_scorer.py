"""The training-free CLIP baseline scorer: the agent's CLIP, any HF CLIP folder, open_clip models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tspo_eval.agent import ClipScorer, TemporalAgent, load_scorer
from tspo_eval.agent.open_clip_encoder import parse_open_clip_spec
from tspo_eval.errors import CheckpointError, InputError

TINY_OPEN_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(6, 36, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny open_clip architecture registered with add_model_config, random weights saved to a file."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip")
    config = folder / "tspo-tiny-oc.json"
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tspo-tiny-oc")
    torch.save(model.state_dict(), folder / "weights.pt")
    return f"open_clip:tspo-tiny-oc/{folder / 'weights.pt'}"


def test_from_agent_shares_features_and_cache_key(tiny_agent_dir: Path, frames: np.ndarray) -> None:
    agent = TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu")
    scorer = ClipScorer.from_agent(agent)
    assert scorer.name == "clip" and scorer.encoder_fingerprint == agent.encoder_fingerprint
    assert scorer.fingerprint != agent.fingerprint
    feats, text = scorer.encode_frames(frames), scorer.encode_text("What is shown?\nA. a\nB. b")
    torch.testing.assert_close(feats, agent.encode_frames(frames))
    scores = scorer.score(feats, text)
    torch.testing.assert_close(scores, F.cosine_similarity(feats, text, dim=-1))
    assert scores.abs().max() <= 1.0 + 1e-6
    assert scorer.select(scores, 2).tolist() == sorted(torch.argsort(scores, descending=True)[:2].tolist())


def test_hf_clip_spec_is_the_same_clip(tiny_agent_dir: Path, frames: np.ndarray) -> None:
    by_path = load_scorer("clip", agent=str(tiny_agent_dir), device="cpu")
    explicit = ClipScorer.from_spec(tiny_agent_dir, device="cpu", dtype="fp32")
    assert isinstance(by_path, ClipScorer)
    assert by_path.encoder_fingerprint == explicit.encoder_fingerprint
    assert by_path.fingerprint == explicit.fingerprint
    torch.testing.assert_close(by_path.encode_frames(frames), explicit.encode_frames(frames))


def test_open_clip_custom_model(tiny_open_clip: str, frames: np.ndarray, tiny_agent_dir: Path) -> None:
    scorer = load_scorer("clip", clip_model=tiny_open_clip, device="cpu")
    feats = scorer.encode_frames(frames)
    text = scorer.encode_text("What colour is the bar?\n(A) red")
    assert feats.shape == (6, 64) and text.shape == (1, 64) and feats.dtype == torch.float32
    torch.testing.assert_close(scorer.encode_frames(list(frames)), feats)
    torch.testing.assert_close(text, scorer.encode_text("What colour is the bar?"))
    scores = scorer.score(feats, text)
    torch.testing.assert_close(scores, F.cosine_similarity(feats, text, dim=-1))
    hf = ClipScorer.from_spec(tiny_agent_dir, device="cpu")
    assert scorer.encoder_fingerprint != hf.encoder_fingerprint
    again = ClipScorer.from_spec(tiny_open_clip, device="cpu")
    assert again.encoder_fingerprint == scorer.encoder_fingerprint
    with pytest.raises(InputError, match="feature sizes differ"):
        scorer.score(feats, hf.encode_text("x"))


def test_open_clip_failures_are_checkpoint_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="cannot load open_clip model"):
        ClipScorer.from_spec("open_clip:No-Such-Arch/whatever", device="cpu")
    with pytest.raises(CheckpointError, match=r"open_clip:ViT-B-32/not-a-tag"):
        ClipScorer.from_spec("open_clip:ViT-B-32/not-a-tag", device="cpu")
    with pytest.raises(InputError, match="ARCH/PRETRAINED"):
        ClipScorer.from_spec("open_clip:ViT-B-32", device="cpu")


def test_parse_open_clip_spec() -> None:
    assert parse_open_clip_spec("open_clip:ViT-B-32/laion2b_s34b_b79k") == ("ViT-B-32", "laion2b_s34b_b79k")
    assert parse_open_clip_spec("open_clip:ViT-L-14//data/w.pt") == ("ViT-L-14", "/data/w.pt")
    assert parse_open_clip_spec("open_clip:hf-hub:org/repo") == ("hf-hub:org/repo", None)


def test_load_scorer_errors(tmp_path: Path, tiny_agent_dir: Path) -> None:
    with pytest.raises(InputError, match="unknown scorer 'siglip'"):
        load_scorer("siglip", agent=str(tiny_agent_dir))
    with pytest.raises(InputError, match="open_clip"):
        load_scorer("tspo", agent=str(tiny_agent_dir), clip_model="open_clip:ViT-B-32/x")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="not a CLIP"):
        ClipScorer.from_spec(tmp_path, device="cpu")


def test_every_scorer_kind_satisfies_the_scorer_protocol(tiny_agent: TemporalAgent, tiny_agent_dir: Path,
                                                         tiny_open_clip: str, frames: np.ndarray) -> None:
    """TSPO, the agent's CLIP, an HF CLIP folder and an open_clip model are all ``Scorer``s, and
    FrameSelector takes each of them as it is."""
    from tspo_eval.agent import Scorer
    from tspo_eval.selection import FrameSelector

    scorers = [tiny_agent, ClipScorer.from_agent(tiny_agent), ClipScorer.from_spec(tiny_agent_dir, device="cpu"),
               ClipScorer.from_spec(tiny_open_clip, device="cpu")]
    for scorer in scorers:
        assert isinstance(scorer, Scorer), type(scorer)
        assert FrameSelector(scorer, cache=False).scorer is scorer
        assert scorer.device == torch.device("cpu") and scorer.name in ("tspo", "clip")
        feats = scorer.encode_frames(frames, batch_size=4)
        scores = scorer.score(feats, scorer.encode_text("What is shown?"))
        assert scores.shape == (len(frames),) and scorer.select(scores, 2, "topk").shape == (2,)
