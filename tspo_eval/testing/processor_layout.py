"""Save a processor in the file layout a checkpoint really has.

transformers 5 ``ProcessorMixin.save_pretrained`` writes ONE ``processor_config.json`` holding the image
and video processor settings, plus ``chat_template.jinja``.  Checkpoints published on the Hub (e.g.
``Qwen/Qwen3-VL-8B-Instruct``, ``OpenGVLab/InternVL3_5-8B-HF``, ``HuggingFaceTB/SmolVLM2-2.2B-Instruct``)
have the older split layout: ``preprocessor_config.json`` (image processor),
``video_preprocessor_config.json`` (video processor), ``processor_config.json`` (only the processor's own
arguments), ``chat_template.json`` and the template also in ``tokenizer_config.json``.  ``AutoProcessor``
loads both; tests can exercise either.
"""
from __future__ import annotations

import json
from pathlib import Path

from tspo_eval.atomic_files import atomic_write
from tspo_eval.errors import InputError

#: ``"hub"``: the split layout of published checkpoints; ``"unified"``: transformers 5 ``save_pretrained``.
PROCESSOR_LAYOUTS: tuple[str, ...] = ("hub", "unified")


def check_processor_layout(layout: str) -> str:
    """``layout`` itself; :class:`~tspo_eval.errors.InputError` when it is not in :data:`PROCESSOR_LAYOUTS`."""
    if layout not in PROCESSOR_LAYOUTS:
        raise InputError(f"unknown processor layout {layout!r}; expected one of {', '.join(PROCESSOR_LAYOUTS)}")
    return layout


def save_processor(processor, out_dir: str | Path, layout: str = "hub") -> Path:
    """Save ``processor`` (with its tokenizer and chat template) to ``out_dir`` in ``layout``."""
    check_processor_layout(layout)
    out = Path(out_dir)
    processor.save_pretrained(out)
    if layout == "unified":
        return out

    unified_path = out / "processor_config.json"
    unified = json.loads(unified_path.read_text(encoding="utf-8"))
    parts = {"image_processor": "preprocessor_config.json", "video_processor": "video_preprocessor_config.json"}
    for key, file_name in parts.items():
        if key in unified:
            atomic_write(out / file_name, getattr(processor, key).to_json_string())
    own_arguments = {key: value for key, value in unified.items() if key not in parts}
    atomic_write(unified_path, json.dumps(own_arguments, indent=2, sort_keys=True) + "\n")

    template = processor.chat_template
    if isinstance(template, str):
        atomic_write(out / "chat_template.json", json.dumps({"chat_template": template}, indent=2) + "\n")
        tokenizer_config_path = out / "tokenizer_config.json"
        tokenizer_config = json.loads(tokenizer_config_path.read_text(encoding="utf-8"))
        tokenizer_config["chat_template"] = template
        atomic_write(tokenizer_config_path, json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n")
        (out / "chat_template.jinja").unlink(missing_ok=True)
    return out
