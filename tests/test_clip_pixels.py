"""ClipPixels: batched CLIP preprocessing with the image processor's numbers, bit for bit.

The oracle is the Hugging Face processor itself (``processor(images=list(frames))``), loaded from
a real ``save_pretrained`` folder or built from its config class.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from loguru import logger

from tspo_eval.agent.clip_pixels import ClipPixels, plan_of, resized_size
from tspo_eval.agent.frames import encode_in_batches

transformers = pytest.importorskip("transformers")
from transformers import AutoImageProcessor, CLIPImageProcessor  # noqa: E402


def reference(processor, frames: np.ndarray) -> torch.Tensor:
    return processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")["pixel_values"]


def frames_of(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random frames with smooth structure and noise (both matter to a resize kernel)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(0, 256, (n, height, width, 3)).astype(np.float32)
    return np.clip(0.5 * ramp + 0.5 * noise, 0, 255).astype(np.uint8)


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype
            and a.contiguous().numpy().tobytes() == b.contiguous().numpy().tobytes())


@pytest.mark.parametrize("height,width", [(360, 640), (640, 360), (240, 240), (31, 47), (224, 224), (225, 400),
                                          (1080, 1920)])
@pytest.mark.parametrize("n", [1, 5])
def test_tiny_checkpoint_processor_bitwise(tiny_agent_dir, height, width, n):
    processor = AutoImageProcessor.from_pretrained(str(tiny_agent_dir))
    pixels = ClipPixels(processor)
    assert pixels.plan is not None  # the fast path is what is under test
    frames = frames_of(n, height, width, seed=height + width)
    assert same_bytes(pixels(frames), reference(processor, frames))
    assert pixels.batched_sizes == {(height, width)}


@pytest.mark.parametrize("resample", [2, 3])
@pytest.mark.parametrize("edge,crop", [(224, (224, 224)), (336, (336, 336)), (64, (48, 64))])
def test_openai_clip_settings_bitwise(resample, edge, crop):
    """The settings of CLIP ViT-L/14 (224 and 336 px), bilinear or bicubic, a non-square crop."""
    processor = CLIPImageProcessor(size={"shortest_edge": edge}, crop_size={"height": crop[0], "width": crop[1]},
                                   resample=resample)
    pixels = ClipPixels(processor)
    assert pixels.plan is not None and pixels.plan.mode == {2: "bilinear", 3: "bicubic"}[resample]
    frames = frames_of(32, 180, 320, seed=resample)
    assert same_bytes(pixels(frames), reference(processor, frames))
    assert pixels.batched_sizes == {(180, 320)}


def test_custom_mean_std_and_rescale_bitwise():
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                   image_mean=[0.1, 0.2, 0.3], image_std=[0.9, 0.8, 0.7], rescale_factor=1 / 127.5)
    frames = frames_of(3, 50, 70)
    pixels = ClipPixels(processor)
    assert same_bytes(pixels(frames), reference(processor, frames)) and pixels.batched_sizes == {(50, 70)}


@pytest.mark.parametrize("settings", [
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 40, "width": 40}},  # crop beyond the frame: padding
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": False},
    {"size": {"height": 32, "width": 48}, "crop_size": {"height": 32, "width": 32}},
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_normalize": False},
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "resample": 0},
])
def test_other_settings_go_to_the_processor(settings):
    processor = CLIPImageProcessor(**settings)
    pixels = ClipPixels(processor)
    assert pixels.plan is None
    frames = frames_of(2, 40, 60)
    assert same_bytes(pixels(frames), reference(processor, frames))


def test_lists_of_arrays_and_pil_images(tiny_agent_dir):
    from PIL import Image

    processor = AutoImageProcessor.from_pretrained(str(tiny_agent_dir))
    pixels = ClipPixels(processor)
    frames = frames_of(4, 90, 160)
    expected = reference(processor, frames)
    assert same_bytes(pixels(list(frames)), expected) and pixels.batched_sizes == {(90, 160)}
    images = [Image.fromarray(f) for f in frames]
    assert same_bytes(pixels(images), processor(images=images, return_tensors="pt")["pixel_values"])
    mixed = [frames[0], frames_of(1, 60, 60)[0]]  # two sizes: one batch the processor groups itself
    assert same_bytes(pixels(mixed), processor(images=mixed, return_tensors="pt",
                                               input_data_format="channels_last")["pixel_values"])


def test_a_size_whose_batched_numbers_differ_falls_back_once_with_a_warning(tiny_agent_dir, monkeypatch):
    processor = AutoImageProcessor.from_pretrained(str(tiny_agent_dir))
    pixels = ClipPixels(processor)
    real_fast = pixels._fast
    monkeypatch.setattr(pixels, "_fast", lambda frames: real_fast(frames) + 1e-3)
    said: list[str] = []
    sink = logger.add(lambda m: said.append(m.record["message"]), level="WARNING")
    try:
        frames = frames_of(3, 72, 128)
        for _ in range(2):
            assert same_bytes(pixels(frames), reference(processor, frames))
    finally:
        logger.remove(sink)
    assert len(said) == 1 and "128x72" in said[0] and "processor" in said[0]
    assert pixels.batched_sizes == set()


def test_read_only_and_strided_arrays(tiny_agent_dir, recwarn):
    """Memory-mapped (read-only) frames and every other frame of a chunk: same bytes, no torch warning."""
    processor = AutoImageProcessor.from_pretrained(str(tiny_agent_dir))
    frames = frames_of(6, 40, 64)
    read_only = frames.copy()
    read_only.flags.writeable = False
    expected = reference(processor, frames)
    assert same_bytes(ClipPixels(processor)(read_only), expected)
    assert same_bytes(ClipPixels(processor)(frames[::2]), expected[::2])
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_pickles_with_its_plan(tiny_agent_dir):
    pixels = pickle.loads(pickle.dumps(ClipPixels(AutoImageProcessor.from_pretrained(str(tiny_agent_dir)))))
    frames = frames_of(2, 48, 64)
    assert pixels.plan is not None and same_bytes(pixels(frames), reference(pixels.processor, frames))
    assert pixels.batched_sizes == {(48, 64)}


def test_plan_of_other_objects_is_none():
    assert plan_of(object()) is None


@pytest.mark.parametrize("height,width,edge,expected", [(360, 640, 224, (224, 398)), (640, 360, 224, (398, 224)),
                                                         (100, 100, 224, (224, 224)), (7, 3, 2, (4, 2))])
def test_resized_size(height, width, edge, expected):
    assert resized_size(height, width, edge) == expected


def test_encode_in_batches_hands_array_slices():
    seen: list = []

    def encode(batch):
        seen.append(batch)
        return torch.zeros(len(batch), 2)

    frames = frames_of(5, 8, 8)
    out = encode_in_batches(torch.from_numpy(frames), 2, 2, encode, "x")
    assert out.shape == (5, 2) and [len(b) for b in seen] == [2, 2, 1]
    assert all(isinstance(b, np.ndarray) and b.ndim == 4 for b in seen)
    assert np.array_equal(np.concatenate(seen), frames)
    seen.clear()
    encode_in_batches(list(frames), 2, 2, encode, "x")
    assert all(isinstance(b, list) for b in seen)
