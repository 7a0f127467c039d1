"""The host-independent answering layer: one HF generation path for every supported family.

Tiny random checkpoints in the real ``save_pretrained`` layout, loaded through
``AutoModelForImageTextToText`` / ``AutoProcessor`` exactly as a user's 7B checkpoint is.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.answering import (
    FAMILIES,
    AnswerRequest,
    GenerationSettings,
    family_for,
    time_instruction,
)
from tspo_eval.answering.hf_video import HFVideoAnswerer, video_metadata
from tspo_eval.errors import CheckpointError, InputError


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from tspo_eval.testing.tiny_vlm_families import (
        build_tiny_internvl,
        build_tiny_qwen3_vl,
        build_tiny_smolvlm2,
    )
    from tspo_eval.testing.tiny_vlms import (
        build_tiny_llava_onevision,
        build_tiny_qwen2_5_vl,
    )

    root = tmp_path_factory.mktemp("answering_vlms")
    builders = {"qwen2_5_vl": build_tiny_qwen2_5_vl, "llava_onevision": build_tiny_llava_onevision,
                "qwen3_vl": build_tiny_qwen3_vl, "internvl": build_tiny_internvl, "smolvlm": build_tiny_smolvlm2}
    if importlib.util.find_spec("num2words") is None:  # SmolVLM2's processor needs it (test extra)
        builders.pop("smolvlm")
    return {name: build(root / name) for name, build in builders.items()}


@pytest.fixture(scope="module")
def answerers(checkpoints) -> dict[str, HFVideoAnswerer]:
    return {name: HFVideoAnswerer.from_pretrained(str(path), device="cpu") for name, path in checkpoints.items()}


def _request(k: int, prompt: str, seed: int, fps: float = 10.0, step: int = 10, **kwargs) -> AnswerRequest:
    frames = np.random.default_rng(seed).integers(0, 256, (k, 56, 56, 3), dtype=np.uint8)
    indices = [i * step for i in range(k)]
    times = kwargs.pop("times", [i / fps for i in indices])
    return AnswerRequest(frames, indices, times, n_frames=400, avg_fps=fps, prompt=prompt,
                         generation=GenerationSettings(max_new_tokens=4), item=f"q{seed}", **kwargs)


PROMPTS = ("What colour is the needle?", "Is it red?",
           "What colour is the needle? Options: A. red B. green C. blue D. yellow The best answer is", "Which one?")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_batched_answers_equal_one_at_a_time(answerers, family: str) -> None:
    if family not in answerers:
        pytest.skip(f"{family}: its processor's packages are not installed")
    answerer = answerers[family]
    requests = [_request(4 if i % 2 else 6, prompt, seed=i) for i, prompt in enumerate(PROMPTS)]
    one_by_one = [answerer.answer([r])[0] for r in requests]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        batched = answerer.answer(requests, batch_size=3)
    assert batched == one_by_one
    assert all(isinstance(a, str) for a in batched)


def test_left_padding_and_mixed_frame_counts_in_one_batch(answerers) -> None:
    answerer = answerers["qwen2_5_vl"]
    requests = [_request(4, PROMPTS[0], seed=1), _request(6, PROMPTS[2], seed=2)]
    inputs = answerer.build_inputs(requests)
    assert inputs["input_ids"].shape[0] == 2
    mask = inputs["attention_mask"]
    assert mask[:, -1].all() and not mask[:, 0].all()  # padding on the left only
    assert inputs["video_grid_thw"][:, 0].tolist() == [2, 3]  # 4 and 6 frames in temporal pairs


def test_time_instruction_follows_the_family_default_and_the_true_times(answerers) -> None:
    uneven = _request(4, "Where is it?", seed=3, times=[0.0, 1.0, 5.0, 5.5])
    assert answerers["llava_onevision"].add_time_instruction
    assert not answerers["qwen2_5_vl"].add_time_instruction
    text = answerers["llava_onevision"].prompt_text(uneven)
    assert text.startswith(time_instruction(uneven)) and "0.00s,1.00s,5.00s,5.50s" in text
    assert text.endswith("Where is it?")
    assert answerers["qwen2_5_vl"].prompt_text(uneven) == "Where is it?"


def test_metadata_carries_frame_numbers_or_true_times_for_vfr() -> None:
    cfr = _request(3, "q", seed=4, fps=10.0, step=10)
    meta = video_metadata(cfr)
    assert list(meta.frames_indices) == [0, 10, 20] and meta.fps == 10.0 and meta.total_num_frames == 400
    assert meta.duration == pytest.approx(40.0)
    # a variable-frame-rate source: presentation times are not frame_index / avg_fps
    vfr = _request(3, "q", seed=4, fps=10.0, step=10, times=[0.0, 1.7, 2.1])
    assert not vfr.times_follow_frame_numbers
    assert video_metadata(vfr).timestamps == pytest.approx([0.0, 1.7, 2.1])


def test_request_validation_names_the_item() -> None:
    good = _request(2, "q", seed=5)
    with pytest.raises(InputError, match="q5: empty prompt"):
        AnswerRequest(good.frames, good.frame_indices, good.timestamps, 400, 10.0, "  ", item="q5")
    with pytest.raises(InputError, match="2 frames but 3 frame numbers"):
        AnswerRequest(good.frames, [0, 1, 2], [0.0, 0.1, 0.2], 400, 10.0, "q")
    with pytest.raises(InputError, match="uint8"):
        AnswerRequest(good.frames.astype(np.float32), good.frame_indices, good.timestamps, 400, 10.0, "q")


def test_generation_settings_from_task_kwargs() -> None:
    greedy = GenerationSettings.from_task_kwargs({"max_new_tokens": 16, "temperature": 0}, 32)
    assert greedy.generate_kwargs() == {"max_new_tokens": 16, "num_beams": 1, "do_sample": False}
    sampled = GenerationSettings.from_task_kwargs({"temperature": 0.7, "top_p": 0.9}, 32, max_new_tokens=5)
    assert sampled.generate_kwargs() == {"max_new_tokens": 5, "num_beams": 1, "do_sample": True,
                                         "temperature": 0.7, "top_p": 0.9}


def test_unsupported_model_type_names_the_supported_ones(tiny_agent_dir: Path) -> None:
    # a common slip: the TSPO agent's folder (a CLIP model) given as the answering model
    with pytest.raises(CheckpointError) as err:
        HFVideoAnswerer.from_pretrained(str(tiny_agent_dir), device="cpu")
    message = str(err.value)
    assert str(tiny_agent_dir) in message and "'clip' is not a supported video model" in message
    assert all(model_type in message for model_type in FAMILIES)
    with pytest.raises(CheckpointError, match="not a supported"):
        family_for("bert")


def test_checkpoint_without_chat_template_is_a_clear_error(checkpoints, tmp_path: Path) -> None:
    folder = tmp_path / "no_template"
    shutil.copytree(checkpoints["qwen2_5_vl"], folder)
    for name in ("chat_template.jinja", "chat_template.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="has no chat template"):
        HFVideoAnswerer.from_pretrained(str(folder), device="cpu")


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot read its config"):
        HFVideoAnswerer.from_pretrained(str(tmp_path / "nowhere"), device="cpu")


def _written_times(answerer: HFVideoAnswerer, request: AnswerRequest) -> list[float]:
    """The times Qwen3-VL's processor wrote into the prompt (``<t seconds>``)."""
    text = answerer.processor.decode(answerer.build_inputs([request])["input_ids"][0])
    return [float(t) for t in re.findall(r"<([0-9.]+) seconds>", text)]


def test_qwen3_vl_writes_the_selected_frames_true_times(answerers, checkpoints) -> None:
    frames = np.random.default_rng(6).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    request = AnswerRequest(frames, [0, 10, 50, 55], [0.0, 1.0, 5.0, 5.5], 400, 10.0, "Where is it?")
    # frames go in temporal pairs: each written time is its pair's mean (1 decimal): gaps 0.5 -> 5.25
    assert _written_times(answerers["qwen3_vl"], request) == [0.5, 5.2]
    exact = HFVideoAnswerer.from_pretrained(str(checkpoints["qwen3_vl"]), device="cpu", exact_frame_times=True)
    assert _written_times(exact, request) == [0.0, 1.0, 5.0, 5.5]
    # a variable-frame-rate source: the presentation times, not frame_index / avg_fps
    vfr = AnswerRequest(frames, [0, 10, 50, 55], [0.0, 1.7, 2.1, 9.3], 400, 10.0, "Where is it?")
    assert _written_times(exact, vfr) == [0.0, 1.7, 2.1, 9.3]
    # uniform frames go through the same path
    uniform = AnswerRequest(frames, [0, 133, 266, 399], [0.0, 13.3, 26.6, 39.9], 400, 10.0, "Where is it?")
    assert _written_times(exact, uniform) == [0.0, 13.3, 26.6, 39.9]
    assert not exact.add_time_instruction and exact.prompt_text(request) == "Where is it?"
