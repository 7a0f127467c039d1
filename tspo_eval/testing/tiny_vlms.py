"""Tiny random video-LLM checkpoints in the real ``save_pretrained`` layouts.

* :func:`build_tiny_qwen2_5_vl` - a ``Qwen2_5_VLForConditionalGeneration`` (the Qwen2.5-VL-7B-Instruct
  layout: config, safetensors, ``Qwen2_5_VLProcessor`` with image + video processors, tokenizer, chat template);
* :func:`build_tiny_llava_onevision` - a ``LlavaOnevisionForConditionalGeneration`` (the
  ``llava-hf/LLaVA-Video-7B-Qwen2-hf`` layout: SigLIP tower + Qwen2 LM, ``LlavaOnevisionProcessor``).

Both use a byte-level BPE tokenizer trained here with ``tokenizers`` (ChatML special tokens as in
Qwen2), random weights and minimal sizes, so ``from_pretrained`` / ``AutoProcessor`` / ``generate``
exercise exactly the code a user's 7B checkpoint goes through, in a second on CPU.
"""
from __future__ import annotations

from pathlib import Path

from tspo_eval.testing.tiny_parts import (
    TOWER_HIDDEN_SIZE,
    decoder_lm_config,
    one_layer_config,
    qwen_vision_config,
    save_random_model,
    save_tiny_processor,
    start_checkpoint,
    token_ids,
    wrap_chatml_tokenizer,
)

#: ChatML special tokens shared by both tiny tokenizers (ids are assigned in this order, from 0).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
)

_CORPUS = (
    "The video lasts for seconds, and frames are sampled from it. These frames are located at "
    "Please answer the following question related to this video. Select the best answer to the "
    "following multiple-choice question based on the video. Respond with only the letter (A, B, C, or D) "
    "of the correct option. What colour is the needle? Options: A. red B. green C. blue D. yellow "
    "The best answer is You are a helpful assistant. user assistant system 0123456789 .,:;()?!"
)

# ChatML templates written for these tiny checkpoints (same rendered format as the Qwen2 family).
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAVA_OV_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] if part['type'] in ('image', 'video') %}"
    "{{ '<image>' if part['type'] == 'image' else '<video>' }}\n{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
    "{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_chatml_tokenizer(vocab_size: int = 420, chat_template: str | None = None):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on a few sentences, with ChatML specials.

    Special token ids are ``0..len(QWEN_SPECIAL_TOKENS)-1`` in :data:`QWEN_SPECIAL_TOKENS` order;
    ``<|im_end|>`` is EOS, ``<|endoftext|>`` is PAD (as in Qwen2 instruct checkpoints).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return wrap_chatml_tokenizer(core, QWEN_SPECIAL_TOKENS, chat_template=chat_template)


def build_tiny_qwen2_5_vl(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64) -> Path:
    """Write a tiny random Qwen2.5-VL checkpoint (model + processor + tokenizer) to ``out_dir``.

    Vision: 1 block, patch 14, spatial merge 2, temporal patch 2; a 56x56 frame gives 4 merged
    tokens per temporal patch (``max_pixels=56*56`` in the saved processors).  Text: 1 layer,
    head dim 32 with an M-RoPE section [4, 6, 6] (scaled with ``hidden_size``).
    """
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )

    out = start_checkpoint(out_dir, seed)
    tokenizer = build_tiny_chatml_tokenizer(chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    ids = token_ids(tokenizer, QWEN_SPECIAL_TOKENS)
    # M-RoPE sections sum to half the head dim (hidden / 2 heads / 2): [4, 6, 6] at hidden 64
    mrope_section = [hidden_size // 16, 3 * hidden_size // 32, 3 * hidden_size // 32]
    config = Qwen2_5_VLConfig(
        text_config=decoder_lm_config(
            tokenizer,
            hidden_size,
            rope_theta=1000000.0,
            rope_scaling={"type": "mrope", "mrope_section": mrope_section},
        ),
        vision_config=qwen_vision_config(
            hidden_size, 14, window_size=112, fullatt_block_indexes=[0], tokens_per_second=2
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    save_random_model(Qwen2_5_VLForConditionalGeneration, config, out, tokenizer=tokenizer)

    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    return save_tiny_processor(
        Qwen2_5_VLProcessor,
        tokenizer,
        out,
        "unified",
        image_processor=Qwen2VLImageProcessor(**pixels),
        video_processor=_qwen_video_processor(pixels),
    )


def _qwen_video_processor(pixels: dict[str, int]):
    """``Qwen2VLVideoProcessor`` on transformers >= 4.52; ``None`` before (the image processor handles videos)."""
    try:
        from transformers import Qwen2VLVideoProcessor
    except ImportError:  # pragma: no cover - older transformers
        return None
    try:
        return Qwen2VLVideoProcessor(**pixels)
    except TypeError:  # pragma: no cover - size-dict API
        return Qwen2VLVideoProcessor(size={"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]})


def build_tiny_llava_onevision(out_dir: str | Path, *, seed: int = 0, hidden_size: int = 64, image_size: int = 28) -> Path:
    """Write a tiny random LLaVA-OneVision / LLaVA-Video (HF layout) checkpoint to ``out_dir``.

    SigLIP tower (1 layer, patch 14, ``image_size`` px: 4 patches per frame, pooled to 1 token per
    frame for videos) and a 1-layer Qwen2 LM; ``vision_feature_select_strategy="full"`` as in the
    released LLaVA-Video-7B-Qwen2-hf.
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
    )

    out = start_checkpoint(out_dir, seed)
    tokenizer = build_tiny_chatml_tokenizer(chat_template=LLAVA_OV_CHAT_TEMPLATE)
    ids = token_ids(tokenizer, QWEN_SPECIAL_TOKENS)
    pinpoints = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
    config = LlavaOnevisionConfig(
        vision_config=one_layer_config(
            TOWER_HIDDEN_SIZE,
            model_type="siglip_vision_model",
            image_size=image_size,
            patch_size=14,
            vision_use_head=False,
        ),
        text_config=decoder_lm_config(tokenizer, hidden_size, model_type="qwen2"),
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
    )
    save_random_model(LlavaOnevisionForConditionalGeneration, config, out, tokenizer=tokenizer)

    size = {"height": image_size, "width": image_size}
    return save_tiny_processor(
        LlavaOnevisionProcessor,
        tokenizer,
        out,
        "unified",
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        video_processor=_llava_video_processor(size),
        num_image_tokens=(image_size // 14) ** 2,
        vision_feature_select_strategy="full",
    )


def _llava_video_processor(size: dict[str, int]):
    """``LlavaOnevisionVideoProcessor`` on transformers >= 4.52, ``None`` before."""
    try:
        from transformers import LlavaOnevisionVideoProcessor
    except ImportError:  # pragma: no cover - older transformers
        return None
    return LlavaOnevisionVideoProcessor(size=size)
