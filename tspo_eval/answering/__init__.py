"""The answering models: load a video-LLM once, answer questions from frames and their true times.

Host-independent: the lmms-eval and VLMEvalKit adapters translate host requests into
:class:`AnswerRequest` s and call an :class:`Answerer`; the trainer's answerers do the same.
Heavy imports (torch, transformers) happen when a model is loaded, not on import.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from tspo_eval.answering.families import FAMILIES, ModelFamily, family_for
from tspo_eval.answering.request import (
    AnswerRequest,
    GenerationSettings,
    time_instruction,
)


@runtime_checkable
class Answerer(Protocol):
    """Anything that answers a batch of requests (one string per request, in order)."""

    def answer(self, requests: Sequence[AnswerRequest], batch_size: int = 1) -> list[str]: ...


def __getattr__(name: str):  # lazy: HFVideoAnswerer pulls in transformers only when used
    if name == "HFVideoAnswerer":
        from tspo_eval.answering.hf_video import HFVideoAnswerer

        return HFVideoAnswerer
    raise AttributeError(name)


__all__ = ["Answerer", "AnswerRequest", "FAMILIES", "GenerationSettings", "HFVideoAnswerer", "ModelFamily",
           "family_for", "time_instruction"]
