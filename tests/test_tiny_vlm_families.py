"""Tiny Qwen3-VL / InternVL / SmolVLM2 checkpoints: real layout, Auto-class loading, one video + text
chat through the processor with the selected frames' metadata, generation, times in the prompt, and
left-padded batch generation equal to batch 1 (greedy)."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
if int(transformers.__version__.split(".")[0]) < 5:
    pytest.skip("the tiny Qwen3-VL / InternVL / SmolVLM2 builders need transformers 5", allow_module_level=True)

FAMILIES = ("qwen3_vl", "internvl", "smolvlm2")
MODEL_TYPES = {"qwen3_vl": "qwen3_vl", "internvl": "internvl", "smolvlm2": "smolvlm"}
#: the selected source frames of the test video (100 frames at 10 fps): uneven gaps on purpose
SELECTED = [0, 10, 50, 55]
QUESTION = "What colour is the needle?"
LONG_QUESTION = (
    "Select the best answer to the following multiple-choice question based on the video. "
    "What colour is the needle? Options: A. red B. green C. blue D. yellow"
)


def _build(family: str, out: Path, **kwargs) -> Path:
    if family == "smolvlm2":
        pytest.importorskip("num2words", reason="SmolVLMProcessor needs num2words")
    from tspo_eval.testing import tiny_vlm_families

    return getattr(tiny_vlm_families, f"build_tiny_{family}")(out, **kwargs)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{family: checkpoint dir}``, built lazily once per module."""
    return {}


@pytest.fixture(scope="module")
def loaded(checkpoints, tmp_path_factory):
    """``load(family) -> (model, processor)`` through the Auto classes, cached per module."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cache: dict[str, tuple] = {}

    def _load(family: str):
        if family not in cache:
            if family not in checkpoints:
                checkpoints[family] = _build(family, tmp_path_factory.mktemp(family), seed=0)
            model = AutoModelForImageTextToText.from_pretrained(checkpoints[family]).eval()
            processor = AutoProcessor.from_pretrained(checkpoints[family])
            cache[family] = (model, processor)
        return cache[family]

    return _load


@pytest.fixture(scope="module")
def test_video(tmp_path_factory) -> Path:
    """A real 100-frame, 10 fps H.264 clip (10 s), 64x48."""
    from tspo_eval.testing import write_test_video

    return write_test_video(tmp_path_factory.mktemp("video") / "clip.mp4", n_frames=100, fps=10.0, width=64, height=48)


def _selected_frames(video: Path, indices: list[int]):
    """Decode ``indices`` with PyAV; return (uint8 [K,H,W,3] frames, transformers VideoMetadata of them)."""
    from transformers.video_utils import VideoMetadata

    from tspo_eval.video import open_video

    with open_video(video, "pyav") as reader:
        frames = reader.get_frames(indices)
        meta = reader.metadata
    metadata = VideoMetadata(
        total_num_frames=meta.n_frames,
        fps=meta.avg_fps,
        duration=meta.duration,
        width=meta.width,
        height=meta.height,
        frames_indices=list(indices),
    )
    return frames, metadata


def _chat(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _encode(processor, texts, videos, metadata):
    return processor(
        text=texts, videos=videos, video_metadata=metadata, do_sample_frames=False, padding=True, return_tensors="pt"
    )


def _prompt(processor, inputs, row: int = 0) -> str:
    keep = inputs["attention_mask"][row].bool()
    return processor.tokenizer.decode(inputs["input_ids"][row][keep])


def _greedy(model, inputs, max_new_tokens: int = 3):
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
    new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]
    return new_tokens, torch.stack(out.scores, dim=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoint_has_the_published_layout(family, tmp_path):
    out = _build(family, tmp_path / family, seed=0)
    names = {p.name for p in out.iterdir()}
    expected = {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "preprocessor_config.json",
        "video_preprocessor_config.json",
        "chat_template.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert expected <= names, sorted(expected - names)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == MODEL_TYPES[family]
    video_config = json.loads((out / "video_preprocessor_config.json").read_text())
    assert video_config["video_processor_type"].lower().startswith(MODEL_TYPES[family].replace("_", ""))
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text())
    total_bytes = sum(p.stat().st_size for p in out.iterdir())
    assert total_bytes < 3_000_000, total_bytes


@pytest.mark.parametrize("family", FAMILIES)
def test_unified_layout_loads_the_same_processor(family, tmp_path, loaded):
    from transformers import AutoProcessor

    out = _build(family, tmp_path / "unified", seed=0, processor_layout="unified")
    assert not (out / "video_preprocessor_config.json").exists()
    unified = AutoProcessor.from_pretrained(out)
    _, hub = loaded(family)
    assert type(unified) is type(hub)
    assert unified.video_processor.to_dict() == hub.video_processor.to_dict()
    assert unified.chat_template == hub.chat_template


def test_unknown_processor_layout_is_refused_before_writing(tmp_path):
    from tspo_eval.errors import InputError
    from tspo_eval.testing import build_tiny_qwen3_vl

    with pytest.raises(InputError, match="unknown processor layout 'flat'; expected one of hub, unified"):
        build_tiny_qwen3_vl(tmp_path / "bad", processor_layout="flat")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("channels_first", [False, True], ids=["KHW3", "K3HW"])
def test_one_video_chat_generates(family, channels_first, loaded, test_video):
    model, processor = loaded(family)
    frames, metadata = _selected_frames(test_video, SELECTED)
    if channels_first:
        frames = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    text = _chat(processor, QUESTION)
    assert text.count(processor.video_token) == 1
    inputs = _encode(processor, [text], [frames], [metadata])
    prompt = _prompt(processor, inputs)
    assert QUESTION in prompt
    frame_blocks = {
        "qwen3_vl": prompt.count("<|vision_start|>") - 1,  # one block per temporal pair, inside the template's own
        "internvl": len(re.findall(r"Frame\d+: <img>", prompt)),
        "smolvlm2": prompt.count("Frame from "),
    }[family]
    assert frame_blocks == (math.ceil(len(SELECTED) / 2) if family == "qwen3_vl" else len(SELECTED))
    new_tokens, _ = _greedy(model, inputs, max_new_tokens=3)
    assert 1 <= new_tokens.shape[1] <= 3
    assert isinstance(processor.batch_decode(new_tokens, skip_special_tokens=True)[0], str)


def _written_seconds(prompt: str) -> list[str]:
    return re.findall(r"<(\d+\.\d) seconds>", prompt)


def test_qwen3_vl_writes_one_time_per_frame_pair(loaded, test_video):
    """Qwen3-VL writes ``<t seconds>`` per temporal pair: t = mean of the pair's true times, one decimal."""
    _, processor = loaded("qwen3_vl")
    frames, metadata = _selected_frames(test_video, SELECTED)
    true_times = [index / metadata.fps for index in SELECTED]  # 0.0, 1.0, 5.0, 5.5
    assert true_times == pytest.approx([0.0, 1.0, 5.0, 5.5])
    inputs = _encode(processor, [_chat(processor, QUESTION)], [frames], [metadata])
    pair_means = [(true_times[i] + true_times[i + 1]) / 2 for i in range(0, len(true_times), 2)]
    assert _written_seconds(_prompt(processor, inputs)) == [f"{t:.1f}" for t in pair_means] == ["0.5", "5.2"]
    assert inputs["video_grid_thw"][0, 0].item() == 2

    odd, odd_meta = _selected_frames(test_video, SELECTED[:3])  # the last frame is paired with itself
    inputs = _encode(processor, [_chat(processor, QUESTION)], [odd], [odd_meta])
    assert _written_seconds(_prompt(processor, inputs)) == ["0.5", "5.0"]


def test_qwen3_vl_doubled_frames_carry_every_true_time(loaded, test_video):
    """Each selected frame passed twice -> one temporal pair per frame -> its exact time (uneven gaps kept)."""
    model, processor = loaded("qwen3_vl")
    frames, metadata = _selected_frames(test_video, SELECTED)
    doubled_indices = [index for index in SELECTED for _ in range(2)]
    metadata.frames_indices = doubled_indices
    inputs = _encode(processor, [_chat(processor, QUESTION)], [np.repeat(frames, 2, axis=0)], [metadata])
    written = [float(t) for t in _written_seconds(_prompt(processor, inputs))]
    assert written == pytest.approx([index / metadata.fps for index in SELECTED])
    assert written == [0.0, 1.0, 5.0, 5.5]
    assert inputs["video_grid_thw"][0, 0].item() == len(SELECTED)
    new_tokens, _ = _greedy(model, inputs, max_new_tokens=2)
    assert new_tokens.shape[1] >= 1


def test_smolvlm2_writes_whole_seconds_per_frame(loaded, test_video):
    _, processor = loaded("smolvlm2")
    frames, metadata = _selected_frames(test_video, SELECTED)
    prompt = _prompt(processor, _encode(processor, [_chat(processor, QUESTION)], [frames], [metadata]))
    assert "series of four frames from a 0:00:10 [H:MM:SS] video" in prompt
    # int(seconds): 5.0 s and 5.5 s both read 00:05
    assert re.findall(r"Frame from (\d\d:\d\d):", prompt) == ["00:00", "00:01", "00:05", "00:05"]


def test_internvl_prompt_carries_no_time(loaded, test_video):
    _, processor = loaded("internvl")
    frames, metadata = _selected_frames(test_video, SELECTED)
    text = _chat(processor, QUESTION)
    inputs = _encode(processor, [text], [frames], [metadata])
    prompt = _prompt(processor, inputs)
    assert re.findall(r"Frame(\d+): <img>", prompt) == ["1", "2", "3", "4"]
    assert "second" not in prompt and ":0" not in prompt
    metadata.frames_indices = [0, 1, 2, 3]  # other frame times: the model input does not change
    other = _encode(processor, [text], [frames], [metadata])
    assert torch.equal(other["input_ids"], inputs["input_ids"])


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padded_batch_matches_batch_of_one(family, loaded, test_video):
    model, processor = loaded(family)
    processor.tokenizer.padding_side = "left"
    first = _selected_frames(test_video, SELECTED)
    second = _selected_frames(test_video, [3, 20, 21, 90])
    texts = [_chat(processor, QUESTION), _chat(processor, LONG_QUESTION)]
    videos, metadata = [first[0], second[0]], [first[1], second[1]]
    batch = _encode(processor, texts, videos, metadata)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert lengths[0] < lengths[1] and batch["attention_mask"][0, 0] == 0  # really left-padded
    batch_tokens, batch_scores = _greedy(model, batch)
    for row in range(2):
        single = _encode(processor, [texts[row]], [videos[row]], [metadata[row]])
        tokens, scores = _greedy(model, single)
        assert batch_tokens[row, : tokens.shape[1]].tolist() == tokens[0].tolist()
        torch.testing.assert_close(batch_scores[row, : scores.shape[1]], scores[0], atol=1e-4, rtol=1e-4)


def test_qwen3_vl_batch_may_mix_frame_counts(loaded, test_video):
    """Qwen3-VL packs videos of different lengths into one batch; InternVL and SmolVLM2 need equal K."""
    model, processor = loaded("qwen3_vl")
    processor.tokenizer.padding_side = "left"
    short = _selected_frames(test_video, SELECTED)
    long = _selected_frames(test_video, [0, 10, 20, 30, 40, 50])
    texts = [_chat(processor, QUESTION), _chat(processor, QUESTION)]
    batch = _encode(processor, texts, [short[0], long[0]], [short[1], long[1]])
    batch_tokens, _ = _greedy(model, batch)
    for row, (frames, metadata) in enumerate([short, long]):
        tokens, _ = _greedy(model, _encode(processor, [texts[row]], [frames], [metadata]))
        assert batch_tokens[row, : tokens.shape[1]].tolist() == tokens[0].tolist()
