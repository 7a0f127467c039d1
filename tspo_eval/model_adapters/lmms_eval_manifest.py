"""lmms-eval model registration (entry point ``lmms_eval.models: tspo_eval``).

lmms-eval 0.7 loads every ``lmms_eval.models`` entry point at start-up and skips *all* plug-ins
when one fails to import, so this module imports nothing heavy: only the ``ModelManifest``
dataclass, and only when lmms-eval calls :func:`model_manifests`.  The classes themselves are
named by dotted path and imported by lmms-eval when a run asks for them.
"""
from __future__ import annotations

from typing import Any

_ADAPTERS = "tspo_eval.model_adapters"

#: model id -> (simple class path, aliases)
MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "hf_video_tspo": (f"{_ADAPTERS}.lmms_eval_hf_video.HFVideoTSPO", ()),
    "qwen2_5_vl_tspo": (f"{_ADAPTERS}.lmms_eval_hf_video.Qwen2_5_VL_TSPO", ("qwen_2_5_vl_tspo",)),
    "qwen3_vl_tspo": (f"{_ADAPTERS}.lmms_eval_hf_video.Qwen3_VL_TSPO", ()),
    "llava_vid_tspo": (f"{_ADAPTERS}.lmms_eval_llava_vid.LlavaVidTSPO", ()),
}


def model_manifests() -> list[Any]:
    """The ``ModelManifest`` list lmms-eval registers: every model of :data:`MODELS` (+ aliases)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(model_id=model_id, simple_class_path=class_path, aliases=aliases)
        for model_id, (class_path, aliases) in MODELS.items()
    ]
