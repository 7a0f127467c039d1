"""Qwen2.5-VL answerers at the published 7B sizes with random weights, built in memory (nothing is
downloaded), for the GPU figures of ``bench_selection_overhead.py``, ``bench_train.py`` and
``gpu_check.py``.  The processor and tokenizer are the tiny test checkpoint's, which has the 7B's
patch grid (14 px patches, spatial merge 2, temporal patch 2).  ``SMOKE_SIZES`` builds the same
way at small sizes, so the construction also runs on a CPU.
"""
from __future__ import annotations

from typing import Any

from bench_candidates import WORK

#: Qwen2.5-VL-7B-Instruct's text and vision sizes (8.29 B parameters)
QWEN_7B_TEXT = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "rope_theta": 1000000.0,
}
QWEN_7B_VISION = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
}
#: the same construction at small sizes (head dim 64: M-RoPE sections sum to 32)
SMOKE_SIZES = (
    {**QWEN_7B_TEXT, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
     "num_key_value_heads": 1, "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]}},
    {**QWEN_7B_VISION, "depth": 4, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2,
     "out_hidden_size": 128, "fullatt_block_indexes": [1, 3]},
)


def tiny_qwen_folder():
    """The tiny test checkpoint (built once under benchmarks/_work)."""
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    tiny = WORK / "tiny_qwen2_5_vl"
    if not (tiny / "model.safetensors").exists():
        build_tiny_qwen2_5_vl(tiny)
    return tiny


def load_vlm(real_size: bool, device: str, sizes: tuple[dict, dict] | None = None, dtype: Any = None,
             attn_implementation: str | None = None):
    """(model, processor): the tiny test checkpoint, or (``real_size``) a random Qwen2.5-VL at ``sizes``
    (default: the 7B's) built directly on ``device`` in ``dtype`` (default bf16)."""
    import torch
    import transformers
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tiny = tiny_qwen_folder()
    processor = AutoProcessor.from_pretrained(tiny)
    if not real_size:
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny).eval().to(device), processor
    text, vision = sizes or (QWEN_7B_TEXT, QWEN_7B_VISION)
    base = Qwen2_5_VLConfig.from_pretrained(tiny)
    config = Qwen2_5_VLConfig(text_config={**text, "eos_token_id": base.text_config.eos_token_id,
                                           "pad_token_id": base.text_config.pad_token_id},
                              vision_config=vision, image_token_id=base.image_token_id,
                              video_token_id=base.video_token_id, vision_start_token_id=base.vision_start_token_id,
                              vision_end_token_id=base.vision_end_token_id)
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, **{dtype_key: dtype or torch.bfloat16}, **extra)
    return model.eval(), processor


def sized_answerer(device: str, sizes: tuple[dict, dict] | None = None, dtype: Any = None,
                   attn_implementation: str | None = None, **options: Any):
    """``HFVideoAnswerer`` over :func:`load_vlm`'s random model at ``sizes``; ``options`` as the answerer's
    (``min_pixels``, ``max_pixels``, ...)."""
    from tspo_eval.answering.families import family_for
    from tspo_eval.answering.hf_video import HFVideoAnswerer

    model, processor = load_vlm(True, device, sizes, dtype, attn_implementation)
    text = model.config.get_text_config()
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = text.eos_token_id, text.pad_token_id
    return HFVideoAnswerer(model, processor, family_for("qwen2_5_vl"), "qwen2_5_vl-7b-sized", **options)
