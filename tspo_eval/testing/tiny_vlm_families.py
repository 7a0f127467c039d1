"""Tiny random checkpoints of more video-LLM families, in the layouts their published checkpoints have.

* :func:`build_tiny_qwen3_vl` - ``Qwen3VLForConditionalGeneration`` (``Qwen/Qwen3-VL-8B-Instruct`` layout);
* :func:`build_tiny_internvl` - transformers' own ``InternVLForConditionalGeneration`` with a Qwen3 LM
  (``OpenGVLab/InternVL3_5-*-HF`` layout);
* :func:`build_tiny_smolvlm2` - ``SmolVLMForConditionalGeneration`` with the video-capable
  ``SmolVLMProcessor`` (``HuggingFaceTB/SmolVLM2-*-Instruct``). Chosen over GLM-4.1V because it is
  self-contained (only the small ``num2words`` package) and the smallest video family transformers ships.

Each writes config.json, model.safetensors, generation_config.json, the tokenizer files and the processor
files (:mod:`tspo_eval.testing.processor_layout`: the split Hub layout by default), loads with
``AutoModelForImageTextToText`` + ``AutoProcessor``, and builds in < 0.5 s on CPU once transformers is
imported (< 1 MB of weights).

What each family does with pre-selected frames (measured with transformers 5.24 on these checkpoints,
proved in ``tests/test_tiny_vlm_families.py``). Every family is called as
``processor(text=[...], videos=[uint8 [K,H,W,3] or [K,3,H,W]], video_metadata=[VideoMetadata(
total_num_frames, fps, duration, frames_indices=[...])], do_sample_frames=False, padding=True)``:

==========  ====================================  ==================================  =========================
model_type  time in the prompt                    pixel budget knobs (video proc.)    left-padded batch (greedy)
==========  ====================================  ==================================  =========================
qwen3_vl    metadata: ``<t seconds>`` per frame   ``size={"shortest_edge",            = batch 1; K may differ
            PAIR, t = mean of the pair's times    "longest_edge"}`` = min/max pixels  between rows
                                                  of the WHOLE clip (T*H*W);
                                                  ``cap_pixels_per_frame``,
                                                  ``max_video_tokens``
internvl    none (``Frame1: <img>..</img>``);     ``size={"height", "width"}`` per    = batch 1 when every row
            metadata accepted and ignored ->      frame (448 real, 56 here);          has the same K; mixed K
            needs the time instruction            ``image_seq_length`` tokens per     raises ValueError
                                                  frame (256 real, 4 here)            (frames are stacked)
smolvlm     metadata: ``Frame from MM:SS:`` per   ``size={"longest_edge"}``,          = batch 1 when every row
            frame, whole seconds truncated        ``max_image_size={"longest_edge"}`` has the same K; mixed K
            (5.0 s and 5.5 s both ``00:05``)      (frames squared to it; 384 in the   writes the batch's MAX
                                                  2.2B, 32 here); ``image_seq_len``   K in every row's intro
                                                  tokens per frame (81 / 4 here)      line (processor bug)
==========  ====================================  ==================================  =========================

Qwen3-VL (``temporal_patch_size`` 2): the processor computes times as ``frames_indices[i] / fps`` and
writes ONE ``<t seconds>`` (``:.1f``) per temporal pair, t = (time of frame 2j + time of frame 2j+1) / 2;
an odd last frame is paired with itself (K = 3 at 0, 1, 5 s -> ``0.5``, ``5.0``). Frames [0, 10, 50, 55]
at 10 fps -> ``<0.5 seconds>``, ``<5.2 seconds>`` (5.25 rounds half-to-even). To give every selected frame
its exact time, pass each frame twice (frames ``[f0, f0, f1, f1, ..]``, ``frames_indices``
``[i0, i0, i1, i1, ..]``): -> ``0.0, 1.0, 5.0, 5.5``, at twice the visual tokens. The template writes
``<|vision_start|><|video_pad|><|vision_end|>`` as the real one does and the processor replaces only
``<|video_pad|>``, so the outer pair stays around the per-pair ``<t seconds><|vision_start|>..<|vision_end|>``
blocks. Pitfalls: ``do_sample_frames`` defaults to True (it would resample the K frames as if they were
the whole video: IndexError or wrong frames); ``frames_indices=None`` -> AttributeError; no ``fps`` ->
24 fps assumed (warning); ``cap_pixels_per_frame`` unset -> a warning per process.

InternVL: ``do_sample_frames`` already False; ``pixel_values`` of images and video frames are
concatenated into one tensor; the prompt is identical whatever the metadata says.

SmolVLM2: an intro line ``You are provided the following series of {K in words} frames from a
{int(duration) as H:MM:SS} [H:MM:SS] video.`` precedes the frames; ``processor.apply_chat_template``
replaces the checkpoint's template with its built-in one whenever a video part is present (same
format); ``<end_of_utterance>`` is EOS; the processor raises ImportError without ``num2words``.
"""
from __future__ import annotations

from pathlib import Path

from tspo_eval.testing.processor_layout import check_processor_layout
from tspo_eval.testing.tiny_parts import (
    TOWER_HIDDEN_SIZE,
    decoder_lm_config,
    one_layer_config,
    qwen_vision_config,
    save_random_model,
    save_tiny_processor,
    start_checkpoint,
    token_ids,
)
from tspo_eval.testing.tiny_vlm_templates import (
    INTERNVL_CHAT_TEMPLATE,
    INTERNVL_NAMED_TOKENS,
    QWEN3_VL_CHAT_TEMPLATE,
    SMOLVLM2_CHAT_TEMPLATE,
    SMOLVLM_GRID_TOKENS,
    SMOLVLM_NAMED_TOKENS,
    build_family_tokenizer,
)
from tspo_eval.testing.tiny_vlms import QWEN_SPECIAL_TOKENS

#: head dim of the families' 1-layer LMs (2 heads x 32 = 64 = the default ``hidden_size``).
LM_HEAD_DIM = 32


def build_tiny_qwen3_vl(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    processor_layout: str = "hub",
) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (model + ``Qwen3VLProcessor`` + tokenizer) to ``out_dir``.

    Vision: 1 block (also the deepstack layer), patch 16, spatial merge 2, temporal patch 2, 4x4 learned
    position grid.  A 64x64 frame pair gives 2x2 = 4 merged tokens (``size`` in the video processor:
    32*32 .. 64*64*16 pixels for the whole clip, 2 fps / 4..64 frames when it samples).  Text: 1 layer,
    head dim 32, interleaved M-RoPE section [6, 5, 5] (the 8B's [24, 20, 20] scaled to 16 rotary pairs).
    """
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    check_processor_layout(processor_layout)
    out = start_checkpoint(out_dir, seed)
    tokenizer = build_family_tokenizer(QWEN3_VL_CHAT_TEMPLATE)
    ids = token_ids(tokenizer, QWEN_SPECIAL_TOKENS)
    config = Qwen3VLConfig(
        text_config=decoder_lm_config(
            tokenizer,
            hidden_size,
            head_dim=LM_HEAD_DIM,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
        ),
        vision_config=qwen_vision_config(
            hidden_size, 16, num_position_embeddings=16, deepstack_visual_indexes=[0]
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    save_random_model(Qwen3VLForConditionalGeneration, config, out, tokenizer=tokenizer, greedy=True)

    common = {"patch_size": 16, "temporal_patch_size": 2, "merge_size": 2}
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3, **common
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64 * 16},
        fps=2,
        min_frames=4,
        max_frames=64,
        cap_pixels_per_frame=False,
        **common,
    )
    return save_tiny_processor(
        Qwen3VLProcessor,
        tokenizer,
        out,
        processor_layout,
        image_processor=image_processor,
        video_processor=video_processor,
    )


def build_tiny_internvl(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    image_size: int = 56,
    processor_layout: str = "hub",
) -> Path:
    """Write a tiny random InternVL (transformers classes, InternVL3.5-HF layout) checkpoint to ``out_dir``.

    InternViT-style tower (1 layer, patch 14, ``image_size`` px -> 4x4 patches), pixel shuffle with
    ``downsample_ratio`` 0.5 -> ``image_seq_length`` = 4 tokens per frame/tile; a 1-layer Qwen3 LM.
    """
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    check_processor_layout(processor_layout)
    out = start_checkpoint(out_dir, seed)
    tokenizer = build_family_tokenizer(INTERNVL_CHAT_TEMPLATE, named_tokens=INTERNVL_NAMED_TOKENS)
    ids = token_ids(tokenizer, INTERNVL_NAMED_TOKENS.values())
    patch = 14
    image_seq_length = int((image_size // patch) ** 2 * 0.5**2)
    config = InternVLConfig(
        vision_config=one_layer_config(
            TOWER_HIDDEN_SIZE,
            image_size=[image_size, image_size],
            patch_size=[patch, patch],
            use_mean_pooling=True,
        ),
        text_config=decoder_lm_config(tokenizer, hidden_size, model_type="qwen3", head_dim=LM_HEAD_DIM),
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=image_seq_length,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    save_random_model(InternVLForConditionalGeneration, config, out, tokenizer=tokenizer, greedy=True)

    size = {"height": image_size, "width": image_size}
    return save_tiny_processor(
        InternVLProcessor,
        tokenizer,
        out,
        processor_layout,
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, min_patches=1, max_patches=4),
        video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=image_seq_length,
    )


def build_tiny_smolvlm2(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    image_size: int = 32,
    processor_layout: str = "hub",
) -> Path:
    """Write a tiny random SmolVLM2 checkpoint (model + video-capable ``SmolVLMProcessor``) to ``out_dir``.

    SigLIP-style tower (1 layer, patch 8, ``image_size`` px -> 4x4 patches), pixel-shuffle scale 2 ->
    ``image_seq_len`` = 4 tokens per frame; a 1-layer Llama LM.  ``<end_of_utterance>`` is EOS.  The
    processor needs the ``num2words`` package (ImportError naming it otherwise).
    """
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    check_processor_layout(processor_layout)
    out = start_checkpoint(out_dir, seed)
    tokenizer = build_family_tokenizer(
        SMOLVLM2_CHAT_TEMPLATE,
        named_tokens=SMOLVLM_NAMED_TOKENS,
        extra_tokens=SMOLVLM_GRID_TOKENS,
        eos_token=SMOLVLM_NAMED_TOKENS["end_of_utterance_token"],
    )
    ids = token_ids(tokenizer, SMOLVLM_NAMED_TOKENS.values())
    patch, scale = 8, 2
    image_seq_len = (image_size // patch) ** 2 // scale**2
    config = SmolVLMConfig(
        vision_config=one_layer_config(TOWER_HIDDEN_SIZE, image_size=image_size, patch_size=patch),
        text_config=decoder_lm_config(
            tokenizer, hidden_size, bos_token="<|im_start|>", model_type="llama", head_dim=LM_HEAD_DIM
        ),
        image_token_id=ids["<image>"],
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    save_random_model(SmolVLMForConditionalGeneration, config, out, tokenizer=tokenizer, greedy=True)

    return save_tiny_processor(
        SmolVLMProcessor,
        tokenizer,
        out,
        processor_layout,
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": 2 * image_size}, max_image_size={"longest_edge": image_size}
        ),
        video_processor=SmolVLMVideoProcessor(
            size={"longest_edge": image_size},
            max_image_size={"longest_edge": image_size},
            video_sampling={"fps": 1, "max_frames": 64, "video_size": {"longest_edge": image_size}},
        ),
        image_seq_len=image_seq_len,
    )
