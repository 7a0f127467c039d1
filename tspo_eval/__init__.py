"""tspo-eval: query-aware frame selection (the TSPO temporal agent) for long-video evaluation.

Heavy modules (torch, transformers) load on first use of the names below, so importing
``tspo_eval`` (and the lmms-eval entry point) stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_EXPORTS: dict[str, str] = {
    "TemporalAgent": "tspo_eval.agent",
    "ClipScorer": "tspo_eval.agent",
    "load_scorer": "tspo_eval.agent",
    "FrameSelector": "tspo_eval.selection",
    "SelectorOptions": "tspo_eval.selector_options",
    "SelectionResult": "tspo_eval.selection",
    "FeatureCache": "tspo_eval.frame_index_cache",
    "open_video": "tspo_eval.video",
}

__all__ = ["__version__", *_LAZY_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tspo_eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
