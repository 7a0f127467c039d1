"""Loading TemporalAgent from the TSPO-0.4B layout and training checkpoints; its failures; its encoders."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tspo_eval.agent import TemporalAgent
from tspo_eval.agent.naive_reference import naive_selector_logits
from tspo_eval.errors import CheckpointError, InputError
from tspo_eval.testing import build_tiny_tspo_checkpoint, random_selector_state


@pytest.fixture(scope="session")
def agent(tiny_agent_dir: Path) -> TemporalAgent:
    return TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu")


@pytest.fixture(scope="session")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 40, 56, 3), dtype=np.uint8)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- the TSPO-0.4B layout -----------------------------------------------------------------------
def test_loads_selector_prefix_and_matches_spec(agent: TemporalAgent, frames: np.ndarray) -> None:
    assert agent.name == "tspo" and agent.device == torch.device("cpu") and agent.dtype == torch.float32
    expected = random_selector_state(seed=0, prefix="")
    for name, tensor in agent.head.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)
    feats = agent.encode_frames(frames)
    text = agent.encode_text("What happens first?\nA. one\nB. two")
    assert feats.shape == (5, 768) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert text.shape == (1, 768)
    scores = agent.score(feats, text)
    assert scores.shape == (5,) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, naive_selector_logits(expected, feats, text), rtol=1e-4, atol=1e-4)
    chosen = agent.select(scores, 2, "topk")
    assert chosen.tolist() == sorted(torch.argsort(scores, descending=True)[:2].tolist())


def test_frame_inputs_agree(agent: TemporalAgent, frames: np.ndarray) -> None:
    ref = agent.encode_frames(frames, batch_size=2)
    torch.testing.assert_close(agent.encode_frames(torch.from_numpy(frames)), ref)
    torch.testing.assert_close(agent.encode_frames([Image.fromarray(f) for f in frames]), ref, rtol=1e-5, atol=1e-5)
    assert agent.encode_frames(frames[:0]).shape == (0, 768)
    for bad in (frames.astype(np.float32), frames[..., :2], frames[0], "frames.mp4"):
        with pytest.raises(InputError):
            agent.encode_frames(bad)


def test_text_uses_question_stem_and_truncates(agent: TemporalAgent) -> None:
    stem = agent.encode_text("Where is the cat?")
    torch.testing.assert_close(agent.encode_text("Where is the cat?\nOptions:\nA. sofa\nB. bed"), stem)
    torch.testing.assert_close(agent.encode_text("Where is the cat?\n(A) sofa\n(B) bed"), stem)
    assert not torch.allclose(agent.encode_text("Where is the dog?"), stem)
    assert agent.encode_text("the cat " * 500).shape == (1, 768)  # > 77 tokens: truncated, not an error
    for empty in ("", "   \n"):
        with pytest.raises(InputError, match="empty question"):
            agent.encode_text(empty)


def test_score_rejects_empty_or_mismatched(agent: TemporalAgent) -> None:
    with pytest.raises(InputError):
        agent.score(torch.zeros(0, 768), torch.ones(1, 768))
    with pytest.raises(InputError):
        agent.score(torch.ones(4, 512), torch.ones(1, 512))


# -- other layouts ------------------------------------------------------------------------------
def test_training_prefix_in_folder(tmp_path: Path, agent: TemporalAgent) -> None:
    folder = build_tiny_tspo_checkpoint(tmp_path / "train", prefix="multiModal_align.", seed=0)
    trained = TemporalAgent.from_pretrained(folder, device="cpu")
    for name, tensor in trained.head.state_dict().items():
        assert torch.equal(tensor, agent.head.state_dict()[name])
    assert trained.fingerprint == agent.fingerprint  # same CLIP (seed 0) and same selector weights


def test_training_pt_file_with_separate_clip(tmp_path: Path, tiny_agent_dir: Path, agent: TemporalAgent) -> None:
    state = random_selector_state(seed=5, prefix="module.multiModal_align.")
    state["module.other.weight"] = torch.zeros(3)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "step_100.pt")
    trained = TemporalAgent.from_pretrained(tmp_path / "step_100.pt", device="cpu", clip_path=tiny_agent_dir)
    assert torch.equal(trained.head.mlp[0].weight, state["module.multiModal_align.mlp.0.weight"])
    assert trained.encoder_fingerprint == agent.encoder_fingerprint
    assert trained.fingerprint != agent.fingerprint


def test_sharded_safetensors_with_index(tmp_path: Path, tiny_agent_dir: Path, agent: TemporalAgent) -> None:
    folder = _copy(tiny_agent_dir, tmp_path / "sharded")
    tensors = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: tensors[k].contiguous() for k in keys}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    sharded = TemporalAgent.from_pretrained(folder, device="cpu")
    assert sharded.fingerprint == agent.fingerprint
    assert sharded.encoder_fingerprint == agent.encoder_fingerprint


# -- failures -----------------------------------------------------------------------------------
def test_plain_clip_has_no_selector(tmp_path: Path) -> None:
    folder = build_tiny_tspo_checkpoint(tmp_path / "plain", prefix=None)
    with pytest.raises(CheckpointError, match="no selector weights") as info:
        TemporalAgent.from_pretrained(folder, device="cpu")
    assert str(folder) in str(info.value)


def test_missing_selector_keys_are_named(tmp_path: Path) -> None:
    folder = build_tiny_tspo_checkpoint(tmp_path / "drop", drop_selector_keys=("mlp.2.bias", "temporal.Self_k.weight"))
    with pytest.raises(CheckpointError, match="missing selector weights") as info:
        TemporalAgent.from_pretrained(folder, device="cpu")
    assert "selector.mlp.2.bias" in str(info.value) and "selector.temporal.Self_k.weight" in str(info.value)


def test_wrong_shapes_are_named(tmp_path: Path) -> None:
    folder = build_tiny_tspo_checkpoint(
        tmp_path / "shape", prefix="multiModal_align.", selector_overrides={"mlp.0.weight": torch.zeros(512, 768)}
    )
    with pytest.raises(CheckpointError, match=r"multiModal_align\.mlp\.0\.weight has shape \(512, 768\), expected \(768, 768\)"):
        TemporalAgent.from_pretrained(folder, device="cpu")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00\x01garbage")
    for path, message in [
        (tmp_path / "empty", "no weight files"),
        (tmp_path / "notes", "no weight files"),
        (tmp_path / "notes" / "readme.txt", "not a weight file"),
        (tmp_path / "broken.safetensors", "cannot read weights"),
        (tmp_path / "absent", "no such file or folder"),
        ("./relative/absent", "no such file or folder"),
    ]:
        with pytest.raises(CheckpointError, match=message) as info:
            TemporalAgent.from_pretrained(path, device="cpu")
        assert str(path) in str(info.value)


def test_hub_id_offline_is_checkpoint_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="could not be fetched from the Hugging Face Hub") as info:
        TemporalAgent.from_pretrained("nobody-here/not-a-tspo-model", device="cpu")
    assert "nobody-here/not-a-tspo-model" in str(info.value)


def test_selector_weights_without_clip_need_clip_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.save(random_selector_state(prefix="multiModal_align."), tmp_path / "head.bin")
    with pytest.raises(CheckpointError, match="openai/clip-vit-large-patch14"):
        TemporalAgent.from_pretrained(tmp_path / "head.bin", device="cpu")


def test_bad_device_and_dtype(tiny_agent_dir: Path) -> None:
    with pytest.raises(InputError, match="dtype"):
        TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu", dtype="int3")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            TemporalAgent.from_pretrained(tiny_agent_dir, device="cuda")


# -- fingerprints -------------------------------------------------------------------------------
def test_encoder_fingerprint_tracks_vision_weights_and_preprocessing(
    tmp_path: Path, tiny_agent_dir: Path, agent: TemporalAgent
) -> None:
    start = time.perf_counter()
    again = TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu")
    assert (again.fingerprint, again.encoder_fingerprint) == (agent.fingerprint, agent.encoder_fingerprint)
    assert time.perf_counter() - start < 30

    vision = _copy(tiny_agent_dir, tmp_path / "vision")
    tensors = load_file(str(vision / "model.safetensors"))
    name = next(k for k in tensors if k.startswith("vision_model.") and k.endswith("fc1.weight"))
    tensors[name] = torch.randn_like(tensors[name])
    save_file(tensors, str(vision / "model.safetensors"), metadata={"format": "pt"})
    changed = TemporalAgent.from_pretrained(vision, device="cpu")
    assert changed.encoder_fingerprint != agent.encoder_fingerprint
    assert changed.fingerprint != agent.fingerprint

    text_only = _copy(tiny_agent_dir, tmp_path / "text")
    tensors = load_file(str(text_only / "model.safetensors"))
    tensors["text_projection.weight"] = torch.randn_like(tensors["text_projection.weight"])
    save_file(tensors, str(text_only / "model.safetensors"), metadata={"format": "pt"})
    text_changed = TemporalAgent.from_pretrained(text_only, device="cpu")
    assert text_changed.encoder_fingerprint == agent.encoder_fingerprint  # image features unchanged: cache reusable
    assert text_changed.fingerprint != agent.fingerprint

    prep = _copy(tiny_agent_dir, tmp_path / "prep")
    config_file = prep / ("preprocessor_config.json" if (prep / "preprocessor_config.json").exists() else "processor_config.json")
    config = json.loads(config_file.read_text())
    image_cfg = config.get("image_processor", config)
    image_cfg["image_mean"] = [0.5, 0.5, 0.5]
    config_file.write_text(json.dumps(config))
    assert TemporalAgent.from_pretrained(prep, device="cpu").encoder_fingerprint != agent.encoder_fingerprint


def test_question_independent_embedding_is_reused_exactly(agent: TemporalAgent) -> None:
    state = {k: v for k, v in agent.head.state_dict().items()}
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(30, 768, generator=gen)
    texts = [agent.encode_text(q) for q in ("What is first?", "What is last?")]
    for text in texts + texts:  # 2nd question and repeats reuse F_e of the same features
        torch.testing.assert_close(agent.score(feats, text), naive_selector_logits(state, feats, text), rtol=1e-4, atol=1e-4)
    feats[7] += 1.0  # same tensor object, new content: must not reuse the old F_e
    torch.testing.assert_close(agent.score(feats, texts[0]), naive_selector_logits(state, feats, texts[0]), rtol=1e-4, atol=1e-4)
    other = torch.randn(31, 768, generator=gen)
    torch.testing.assert_close(agent.score(other, texts[1]), naive_selector_logits(state, other, texts[1]), rtol=1e-4, atol=1e-4)


def test_weight_fingerprint_closes_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``ResourceWarning: unclosed file``: one handle per weight file, closed (run as -W error::ResourceWarning)."""
    import gc
    import hashlib
    import sys
    import warnings

    from safetensors.torch import save_file

    from tspo_eval.agent.fingerprint import hash_safetensors

    files = []
    for shard in range(2):
        path = tmp_path / f"model-{shard}.safetensors"
        save_file({f"vision_model.layer{shard}_{i}.weight": torch.randn(16, 16) for i in range(6)}, str(path))
        files.append(path)
    unraisable: list = []   # a warning turned error inside a file's __del__ surfaces here, not as a raise
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        digest = hashlib.sha256()
        assert hash_safetensors(files, ("vision_model.",), digest) == 12
        gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        again = hashlib.sha256()
        hash_safetensors(files, ("vision_model.",), again)
        gc.collect()
    assert not unraisable, [str(u.exc_value) for u in unraisable]
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert again.hexdigest() == digest.hexdigest()
