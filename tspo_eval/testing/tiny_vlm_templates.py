"""Chat templates and tokenizers of the tiny video-LLM families in :mod:`tspo_eval.testing.tiny_vlm_families`.

The templates are written for these tiny checkpoints in the rendered format of each family's published
chat template; the tokenizers are the tiny byte-level BPE of
:func:`tspo_eval.testing.tiny_vlms.build_tiny_chatml_tokenizer` plus each family's special tokens.
"""
from __future__ import annotations

from tspo_eval.testing.tiny_parts import CHATML_EOS_TOKEN, wrap_chatml_tokenizer
from tspo_eval.testing.tiny_vlms import QWEN_SPECIAL_TOKENS, build_tiny_chatml_tokenizer

# Qwen3-VL-Instruct style ChatML: no default system turn; vision parts are wrapped in
# <|vision_start|> ... <|vision_end|>; ``add_vision_id`` prefixes "Picture N: " / "Video N: ".
QWEN3_VL_CHAT_TEMPLATE = (
    "{% set counts = namespace(image=0, video=0) %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{% set counts.image = counts.image + 1 %}"
    "{% if add_vision_id %}Picture {{ counts.image }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{% set counts.video = counts.video + 1 %}"
    "{% if add_vision_id %}Video {{ counts.video }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# InternVL (HF classes) ChatML: an image part becomes <IMG_CONTEXT>, a video part <video>, each on its
# own line; the processor expands them into <img>...</img> blocks ("Frame{i}: " per video frame).
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif part['type'] == 'video' %}<video>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# SmolVLM2 turn format: "<|im_start|>User: ...<end_of_utterance>\nAssistant:". (For prompts with a
# video, SmolVLMProcessor.apply_chat_template uses its own built-in template of the same format.)
SMOLVLM2_CHAT_TEMPLATE = (
    "<|im_start|>"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}: {{ message['content'] }}"
    "{% else %}{{ ':' if message['content'][0]['type'] == 'image' else ': ' }}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'video' %}<video>{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

#: InternVL's named multimodal tokens (tokenizer attributes the InternVLProcessor reads).
INTERNVL_NAMED_TOKENS: dict[str, str] = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}

#: SmolVLM's named multimodal tokens, plus the grid tokens of split images (up to 4 x 4 tiles).
SMOLVLM_NAMED_TOKENS: dict[str, str] = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
    "video_token": "<video>",
}
SMOLVLM_GRID_TOKENS: tuple[str, ...] = tuple(f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5))


def build_family_tokenizer(
    chat_template: str,
    named_tokens: dict[str, str] | None = None,
    extra_tokens: tuple[str, ...] = (),
    eos_token: str = CHATML_EOS_TOKEN,
):
    """The tiny ChatML byte-level BPE tokenizer plus a family's own special tokens.

    ``named_tokens`` become tokenizer attributes (``tokenizer.<name>`` / ``tokenizer.<name>_id``, saved
    as ``model_specific_special_tokens``) - the way InternVL / SmolVLM processors find their tokens.
    Tokens not already among :data:`QWEN_SPECIAL_TOKENS` get new ids after the BPE vocabulary.
    """
    base = build_tiny_chatml_tokenizer()
    named = dict(named_tokens or {})
    new_tokens = [t for t in (*named.values(), *extra_tokens, eos_token) if t not in QWEN_SPECIAL_TOKENS]
    new_tokens = list(dict.fromkeys(new_tokens))
    if new_tokens:
        base.add_tokens(new_tokens, special_tokens=True)
    return wrap_chatml_tokenizer(
        base.backend_tokenizer,
        list(dict.fromkeys([*QWEN_SPECIAL_TOKENS, *new_tokens])),
        eos_token=eos_token,
        chat_template=chat_template,
        model_specific_special_tokens=named or None,
    )
