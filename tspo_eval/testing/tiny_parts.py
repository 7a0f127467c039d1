"""Parts every tiny checkpoint builder shares (:mod:`tspo_eval.testing.tiny_checkpoints`,
:mod:`~tspo_eval.testing.tiny_vlms`, :mod:`~tspo_eval.testing.tiny_vlm_families`).

* the output folder + the torch seed the random weights are drawn from (:func:`start_checkpoint`);
* the config literals of the 1-layer, 2-head towers and language models (:func:`one_layer_config`,
  :func:`decoder_lm_config`, :func:`qwen_vision_config`);
* the random model saved with ``save_pretrained`` (:func:`save_random_model`) and the processor saved in a
  file layout (:func:`save_tiny_processor`);
* the ChatML ``PreTrainedTokenizerFast`` wrapper and the special-token id lookup (:func:`wrap_chatml_tokenizer`,
  :func:`token_ids`).

Each builder keeps only what is specific to its family: its classes, vision tower, token ids and processors.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from tspo_eval.testing.processor_layout import save_processor

#: EOS and PAD of the tiny ChatML tokenizers (as in Qwen2 instruct checkpoints, where PAD is also BOS).
CHATML_EOS_TOKEN = "<|im_end|>"
CHATML_PAD_TOKEN = "<|endoftext|>"
#: Hidden width of every tiny vision tower (MLP twice as wide).
TOWER_HIDDEN_SIZE = 32


def start_checkpoint(out_dir: str | Path, seed: int) -> Path:
    """Create ``out_dir`` (with parents) and seed torch's global RNG, from which the random weights are drawn."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return out


def one_layer_config(hidden_size: int, **family: Any) -> dict[str, Any]:
    """Config literals of a 1-layer transformer: 2 attention heads, MLP ``2 * hidden_size`` wide, plus ``family``."""
    return {
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        **family,
    }


def vocabulary_fields(tokenizer, bos_token_id: int | None) -> dict[str, Any]:
    """``vocab_size`` (``len(tokenizer)``) and the BOS / EOS / PAD ids of a text config sized to ``tokenizer``."""
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def decoder_lm_config(tokenizer, hidden_size: int, *, bos_token: str = CHATML_PAD_TOKEN, **family: Any) -> dict[str, Any]:
    """``text_config`` of a 1-layer decoder LM over ``tokenizer``: 2 query heads sharing 1 key/value head,
    4096 positions; BOS is ``bos_token``, EOS / PAD are the tokenizer's.  ``family`` adds or overrides keys
    (``model_type``, ``head_dim``, RoPE settings)."""
    bos_token_id = token_ids(tokenizer, [bos_token])[bos_token]
    return one_layer_config(
        hidden_size,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        **family,
        **vocabulary_fields(tokenizer, bos_token_id),
    )


def qwen_vision_config(out_hidden_size: int, patch_size: int, **family: Any) -> dict[str, Any]:
    """``vision_config`` of a 1-block Qwen-VL tower: spatial merge 2, temporal patch 2, merged tokens projected
    to ``out_hidden_size`` (the LM width); ``family`` adds the generation's own keys."""
    return {
        "depth": 1,
        "hidden_size": TOWER_HIDDEN_SIZE,
        "intermediate_size": 2 * TOWER_HIDDEN_SIZE,
        "num_heads": 2,
        "out_hidden_size": out_hidden_size,
        "patch_size": patch_size,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        **family,
    }


def save_random_model(model_class, config, out: Path, *, tokenizer=None, greedy: bool = False) -> None:
    """Instantiate ``model_class(config)`` (random weights from the seeded RNG, eval mode) and ``save_pretrained``
    it to ``out`` as safetensors, with ``config.architectures = [model_class.__name__]``.

    With ``tokenizer``, ``generation_config.json`` gets its EOS / PAD ids; ``greedy`` also writes
    ``do_sample: false`` there.
    """
    config.architectures = [model_class.__name__]
    model = model_class(config).eval()
    if tokenizer is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if greedy:
            model.generation_config.do_sample = False
    model.save_pretrained(out, safe_serialization=True)


def save_tiny_processor(processor_class, tokenizer, out: Path, layout: str, **parts: Any) -> Path:
    """Build ``processor_class(tokenizer=tokenizer, chat_template=tokenizer.chat_template, **parts)`` and save it
    (with the tokenizer and template) to ``out`` in ``layout`` (:func:`~tspo_eval.testing.processor_layout.save_processor`)."""
    processor = processor_class(tokenizer=tokenizer, chat_template=tokenizer.chat_template, **parts)
    return save_processor(processor, out, layout)


def wrap_chatml_tokenizer(
    backend,
    special_tokens: Sequence[str],
    *,
    eos_token: str = CHATML_EOS_TOKEN,
    chat_template: str | None = None,
    **named: Any,
):
    """A left-padding ``PreTrainedTokenizerFast`` over the ``tokenizers`` object ``backend``: EOS ``eos_token``,
    PAD ``<|endoftext|>``, the other ``special_tokens`` as additional specials, 32768 max length, and
    ``chat_template`` when given.  ``named`` passes further tokenizer arguments (``model_specific_special_tokens``)."""
    from transformers import PreTrainedTokenizerFast

    if chat_template is not None:  # no template: no ``chat_template`` key in tokenizer_config.json
        named["chat_template"] = chat_template
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos_token,
        pad_token=CHATML_PAD_TOKEN,
        additional_special_tokens=[t for t in special_tokens if t not in (eos_token, CHATML_PAD_TOKEN)],
        model_max_length=32768,
        padding_side="left",
        **named,
    )


def token_ids(tokenizer, tokens: Iterable[str]) -> dict[str, int]:
    """``{token: id}``; ``RuntimeError`` when the tiny tokenizer lacks one (a builder bug)."""
    ids = {}
    for token in tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise RuntimeError(f"tiny tokenizer lacks the special token {token!r}")
        ids[token] = int(token_id)
    return ids
