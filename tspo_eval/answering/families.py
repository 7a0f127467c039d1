"""What differs between Hugging Face video-LLM families, keyed by the checkpoint's ``model_type``.

One generic answerer (:mod:`tspo_eval.answering.hf_video`) serves every family; this table holds
the few facts it needs per family. How each family sees the frames' times:

* ``timestamps`` - the processor writes one time per frame (or per merged frame pair) into the
  prompt from the video metadata we pass (the selected frames' true times): uneven gaps survive.
* ``mean-rate`` - one time step per frame pair at the selection's mean rate (Qwen2.5-VL's M-RoPE):
  the length of the video is right, uneven gaps are not; the time instruction can state them.
* ``none`` - the model has no notion of time; the time instruction states the frames' times.
"""
from __future__ import annotations

from dataclasses import dataclass

from tspo_eval.errors import CheckpointError

TIME_ENCODINGS = ("timestamps", "mean-rate", "none")


@dataclass(frozen=True)
class ModelFamily:
    """Per-family facts for the generic answerer.

    Attributes:
        model_type: ``config.json``'s ``model_type``.
        name: the family's usual name (docs, logs).
        time_encoding: one of :data:`TIME_ENCODINGS` (see the module doc).
        time_instruction: default of ``add_time_instruction`` (state the frames' times in the prompt).
        qwen_pixel_budget: frames are resized by qwen-vl-utils' video rules (``min_pixels``,
            ``max_pixels``, ``total_pixels`` shared by the K frames) before the processor sees them;
            otherwise the processor resizes to its own fixed size.
        temporal_patch: frames merged into one time step by the vision tower (2 for the Qwen
            families: a written timestamp is the mean time of a frame pair).
        example: a published checkpoint of the family (docs and defaults).
    """

    model_type: str
    name: str
    time_encoding: str
    time_instruction: bool
    qwen_pixel_budget: bool = False
    temporal_patch: int = 1
    example: str = ""


FAMILIES: dict[str, ModelFamily] = {family.model_type: family for family in (
    ModelFamily("qwen2_5_vl", "Qwen2.5-VL", "mean-rate", False, qwen_pixel_budget=True, temporal_patch=2,
                example="Qwen/Qwen2.5-VL-7B-Instruct"),
    ModelFamily("qwen3_vl", "Qwen3-VL", "timestamps", False, qwen_pixel_budget=True, temporal_patch=2,
                example="Qwen/Qwen3-VL-8B-Instruct"),
    ModelFamily("llava_onevision", "LLaVA-OneVision / LLaVA-Video", "none", True,
                example="llava-hf/LLaVA-Video-7B-Qwen2-hf"),
    ModelFamily("internvl", "InternVL3 / InternVL3.5", "none", True, example="OpenGVLab/InternVL3_5-8B-HF"),
    ModelFamily("smolvlm", "SmolVLM2", "timestamps", False, example="HuggingFaceTB/SmolVLM2-2.2B-Instruct"),
)}


def family_for(model_type: str, checkpoint: str = "") -> ModelFamily:
    """The :class:`ModelFamily` of ``model_type``; :class:`CheckpointError` naming the supported ones."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        supported = ", ".join(f"{f.model_type} ({f.name})" for f in FAMILIES.values())
        raise CheckpointError(checkpoint or model_type,
                              f"model_type {model_type!r} is not a supported video model; supported: {supported}") from None
