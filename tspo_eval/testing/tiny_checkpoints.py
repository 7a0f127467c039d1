"""Tiny TSPO-0.4B-layout checkpoints: a random CLIP (projection_dim 768, tiny towers) saved with
``save_pretrained`` together with its processor, plus the selector head under ``selector.``
(or ``multiModal_align.`` for training checkpoints)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tspo_eval.testing.tiny_parts import (
    one_layer_config,
    save_random_model,
    start_checkpoint,
    vocabulary_fields,
)

FEATURE_DIM = 768
#: the selector's six ``FEATURE_DIM`` x ``FEATURE_DIM`` linear layers (attention q/k/v/out, 2-layer MLP), in order.
SELECTOR_LINEAR_LAYERS: tuple[str, ...] = (
    "temporal.Self_q",
    "temporal.Self_k",
    "temporal.Self_v",
    "temporal.ffn_o",
    "mlp.0",
    "mlp.2",
)
#: selector parameter name (without prefix) -> shape, as in TSPO-0.4B (3,543,552 parameters):
#: ``<layer>.weight`` [768, 768] then ``<layer>.bias`` [768] for each layer above.
SELECTOR_SHAPES: dict[str, tuple[int, ...]] = {
    f"{layer}.{param}": shape
    for layer in SELECTOR_LINEAR_LAYERS
    for param, shape in (("weight", (FEATURE_DIM, FEATURE_DIM)), ("bias", (FEATURE_DIM,)))
}


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: 256 printable characters standing for the 256 bytes."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tiny_clip_tokenizer(model_max_length: int = 77):
    """A real ``CLIPTokenizer`` over the byte alphabet plus a few merges (works on transformers 4.x and 5.x)."""
    import tempfile

    from transformers import CLIPTokenizer

    alphabet = _bytes_to_unicode()
    merges = ["t h", "th e</w>", "w h", "a t</w>", "i n", "o n</w>", "e r</w>", "a n"]
    tokens = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    try:  # transformers 5.x: the tokenizers-backed class takes the vocabulary itself
        return CLIPTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in merges], model_max_length=model_max_length)
    except TypeError:  # transformers 4.x: files on disk
        folder = Path(tempfile.mkdtemp(prefix="tiny_clip_tok_"))
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=model_max_length)


def random_selector_state(seed: int = 0, prefix: str = "selector.", scale: float = 0.02) -> dict[str, torch.Tensor]:
    """Random selector-head weights with the real names and shapes, under ``prefix``."""
    gen = torch.Generator().manual_seed(seed)
    return {prefix + name: torch.randn(shape, generator=gen) * scale for name, shape in SELECTOR_SHAPES.items()}


def build_tiny_tspo_checkpoint(
    out_dir: str | Path,
    *,
    prefix: str | None = "selector.",
    seed: int = 0,
    image_size: int = 32,
    hidden_size: int = 32,
    selector_overrides: dict[str, torch.Tensor] | None = None,
    drop_selector_keys: tuple[str, ...] = (),
) -> Path:
    """Write a tiny checkpoint in the TSPO-0.4B layout to ``out_dir`` and return the folder.

    ``prefix=None`` writes a plain CLIP (no selector: a checkpoint the agent must refuse);
    ``"multiModal_align."`` writes the training layout.  ``selector_overrides`` replaces
    tensors (e.g. with wrong shapes); ``drop_selector_keys`` removes some (names without prefix).
    """
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    out = start_checkpoint(out_dir, seed)
    tokenizer = build_tiny_clip_tokenizer()
    config = CLIPConfig(
        text_config=one_layer_config(
            hidden_size, max_position_embeddings=77, **vocabulary_fields(tokenizer, tokenizer.bos_token_id)
        ),
        vision_config=one_layer_config(hidden_size, image_size=image_size, patch_size=8),
        projection_dim=FEATURE_DIM,
    )
    save_random_model(CLIPModel, config, out)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)

    if prefix is not None:
        state = random_selector_state(seed, prefix)
        for name, tensor in (selector_overrides or {}).items():
            state[prefix + name] = tensor
        for name in drop_selector_keys:
            state.pop(prefix + name, None)
        weights = out / "model.safetensors"
        from safetensors.torch import load_file

        merged = load_file(str(weights))
        merged.update({k: v.contiguous() for k, v in state.items()})
        save_file(merged, str(weights), metadata={"format": "pt"})
    return out
