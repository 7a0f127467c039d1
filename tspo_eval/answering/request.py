"""What an answering model is asked: frames with their true times, and the prompt text.

One :class:`AnswerRequest` is one question about one video. It is built by the hosts' adapters
(lmms-eval, VLMEvalKit) and by the trainer's answerers from a
:class:`~tspo_eval.selection.SelectionResult` (or any frame set) and the decoded frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from tspo_eval.errors import InputError

#: frames per second of the millisecond grid :meth:`AnswerRequest.multiple_choice` describes a video on
MS_GRID = 1000.0


@dataclass(frozen=True)
class GenerationSettings:
    """HF ``generate`` settings for one answer; ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float | None = None
    num_beams: int = 1

    @classmethod
    def from_task_kwargs(cls, gen_kwargs: dict[str, Any] | None, default_max_new_tokens: int,
                         max_new_tokens: int | None = None) -> "GenerationSettings":
        """From a host task's ``generation_kwargs``; the model's own ``max_new_tokens`` (when set) wins."""
        gen_kwargs = dict(gen_kwargs or {})
        top_p = gen_kwargs.get("top_p")
        return cls(
            max_new_tokens=int(max_new_tokens or gen_kwargs.get("max_new_tokens") or default_max_new_tokens),
            temperature=float(gen_kwargs.get("temperature", 0) or 0),
            top_p=float(top_p) if top_p is not None else None,
            num_beams=int(gen_kwargs.get("num_beams", 1) or 1),
        )

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate``."""
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams,
                                  "do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs["temperature"] = self.temperature
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        return kwargs


@dataclass(frozen=True)
class AnswerRequest:
    """One question about one video, with the frames the model may look at.

    Attributes:
        frames: uint8 [K, H, W, 3] RGB, temporal order.
        frame_indices: K source frame numbers of ``frames``.
        timestamps: K presentation times in seconds (the frames' true times, VFR-safe).
        n_frames: frame count of the source video.
        avg_fps: average frame rate of the source video.
        prompt: the question as the host words it (options, answer instruction), without image tokens.
        generation: how to generate.
        item: who asked (a question id), for error messages and logs.
        question: the question stem the prompt was built from (rule-based answerers read it).
        options: the option texts without letters, in letter order (idem).
    """

    frames: np.ndarray
    frame_indices: Sequence[int]
    timestamps: Sequence[float]
    n_frames: int
    avg_fps: float
    prompt: str
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    item: str = ""
    question: str = ""
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        frames = self.frames
        if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"{self.item or 'answer request'}: frames must be uint8 [K,H,W,3], "
                             f"got {getattr(frames, 'dtype', type(frames))} {getattr(frames, 'shape', '')}")
        if len(frames) == 0:
            raise InputError(f"{self.item or 'answer request'}: no frames to answer from")
        if not (len(self.frame_indices) == len(self.timestamps) == len(frames)):
            raise InputError(f"{self.item or 'answer request'}: {len(frames)} frames but {len(self.frame_indices)} "
                             f"frame numbers and {len(self.timestamps)} times")
        if not self.prompt.strip():
            raise InputError(f"{self.item or 'answer request'}: empty prompt")

    @classmethod
    def from_selection(cls, result: Any, frames: np.ndarray, prompt: str,
                       generation: GenerationSettings | None = None, item: str = "") -> "AnswerRequest":
        """From a :class:`~tspo_eval.selection.SelectionResult` and its decoded frames (uint8 [K,H,W,3])."""
        return cls(frames=frames, frame_indices=[int(i) for i in result.frame_indices],
                   timestamps=[float(t) for t in result.timestamps], n_frames=int(result.n_frames),
                   avg_fps=float(result.avg_fps), prompt=prompt, generation=generation or GenerationSettings(),
                   item=item)

    @classmethod
    def multiple_choice(cls, frames: np.ndarray, timestamps: Sequence[float], duration: float, question: str,
                        options: Sequence[str], generation: GenerationSettings | None = None,
                        item: str = "", prompt: str = "") -> "AnswerRequest":
        """A multiple-choice question about frames known by their times only (a training prompt,
        a needle composite). ``prompt`` "" -> the usual ``stem``, ``A. ...`` lines and answer
        instruction; the video is described on a millisecond grid so every time is exact."""
        from tspo_eval.benchmarks.records import multiple_choice_prompt

        return cls(frames=frames, frame_indices=[round(float(t) * MS_GRID) for t in timestamps],
                   timestamps=[float(t) for t in timestamps], n_frames=max(1, round(float(duration) * MS_GRID)),
                   avg_fps=MS_GRID, prompt=prompt or multiple_choice_prompt(question, options),
                   generation=generation or GenerationSettings(), item=item, question=question,
                   options=tuple(options))

    @property
    def duration(self) -> float:
        """Source video length in seconds (``n_frames / avg_fps``)."""
        return self.n_frames / self.avg_fps if self.avg_fps > 0 else float(len(self.frames))

    @property
    def times_follow_frame_numbers(self) -> bool:
        """True when every time is ``frame_index / avg_fps`` (constant frame rate), within 1 ms."""
        if self.avg_fps <= 0:
            return False
        return all(abs(t - i / self.avg_fps) < 1e-3 for i, t in zip(self.frame_indices, self.timestamps))


def time_instruction(request: AnswerRequest) -> str:
    """LLaVA-Video's time preamble for the selected frames: video length, frame count, true frame times."""
    times = ",".join(f"{t:.2f}s" for t in request.timestamps)
    return (f"The video lasts for {request.duration:.2f} seconds, and {len(request.frames)} frames are sampled "
            f"from it. These frames are located at {times}.Please answer the following questions related to this video.")
