"""Builders of tiny real artefacts for tests and benchmarks: checkpoints in the real
``save_pretrained`` layouts and small real video files encoded with PyAV.

Nothing here downloads anything; everything is made from transformers' config classes with
random weights, so the loading code under test is the code that loads the real checkpoints.
"""
from tspo_eval.testing.tiny_checkpoints import (
    SELECTOR_SHAPES,
    build_tiny_clip_tokenizer,
    build_tiny_tspo_checkpoint,
    random_selector_state,
)
from tspo_eval.testing.tiny_vlm_families import (
    build_tiny_internvl,
    build_tiny_qwen3_vl,
    build_tiny_smolvlm2,
)
from tspo_eval.testing.tiny_vlms import (
    build_tiny_llava_onevision,
    build_tiny_qwen2_5_vl,
)
from tspo_eval.testing.videos import write_test_video

__all__ = [
    "SELECTOR_SHAPES",
    "build_tiny_clip_tokenizer",
    "build_tiny_internvl",
    "build_tiny_llava_onevision",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "build_tiny_smolvlm2",
    "build_tiny_tspo_checkpoint",
    "random_selector_state",
    "write_test_video",
]
