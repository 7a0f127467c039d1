"""``synthetic-reader``: a stand-in answering model that reads the pixels of the frames it is given.

It answers the synthetic benchmark's questions (:mod:`tspo_eval.testing.synthetic_benchmark`) from
what it sees, so it is right only when the needle frames were sampled: the reward for CPU tests
and the toy example of training, where no video-LLM can run.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from tspo_eval.answering.request import AnswerRequest
from tspo_eval.errors import InputError


#: the synthetic benchmark's needle colours (tspo_eval.testing.synthetic_benchmark.COLORS)
def _palette() -> dict[str, tuple[int, int, int]]:
    from tspo_eval.testing.synthetic_benchmark import COLORS

    return dict(COLORS)


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
_QUARTER_RE = re.compile(r"\b(first|second|third|last|fourth)\s+quarter\b", re.IGNORECASE)
UNREADABLE = "I cannot tell."


class SyntheticReader:
    """Answers the synthetic benchmark's questions from the pixels of the frames it is given.

    A frame is a *needle frame* of colour c when it is nearly uniform (mean per-channel spatial
    std below ``max_std``) and its mean RGB lies within ``max_distance`` of the palette colour c;
    the dim moving-pattern background never qualifies.  Questions it reads:

    * options that are colour names: "... the <k-th> coloured segment ..." (also "at the
      beginning" = first, "at the end" / "last" = last): the colours of the needle frames it
      sees, in order of first appearance, are the segments; the answer is the k-th one's option;
    * options that are quarters ("the first quarter" ... "the last quarter") and a question naming
      a colour: the quarter of ``duration`` in which it sees frames of that colour.

    Anything it cannot see (fewer segments than k, no frame of the colour) is answered with
    "I cannot tell." (no letter: R_A = 0), so it is right only when the needle frames were sampled.
    A question it cannot read at all raises InputError naming the question.
    """

    name = "synthetic-reader"

    def __init__(self, max_std: float = 12.0, max_distance: float = 60.0) -> None:
        self.max_std, self.max_distance = max_std, max_distance
        self.palette = _palette()
        self._names = list(self.palette)
        self._rgb = np.asarray([self.palette[n] for n in self._names], dtype=np.float64)  # [C, 3]

    def frame_colors(self, frames: np.ndarray) -> list[str | None]:
        """The needle colour of each frame of uint8 ``[K, H, W, 3]``, None for other frames."""
        pixels = np.asarray(frames, dtype=np.float64).reshape(len(frames), -1, 3)
        means, stds = pixels.mean(axis=1), pixels.std(axis=1).mean(axis=1)  # [K, 3], [K]
        distance = np.linalg.norm(means[:, None, :] - self._rgb[None], axis=2)  # [K, C]
        nearest = distance.argmin(axis=1)
        return [self._names[c] if s <= self.max_std and distance[i, c] <= self.max_distance else None
                for i, (c, s) in enumerate(zip(nearest, stds))]

    def answer(self, requests: Sequence[AnswerRequest], batch_size: int = 1) -> list[str]:
        """One answer per request (``batch_size`` is accepted for the :class:`Answerer` protocol)."""
        return [self.answer_one(request) for request in requests]

    def answer_one(self, request: AnswerRequest) -> str:
        """The answer text for one request ("The answer is X." or :data:`UNREADABLE`)."""
        options = [o.strip().lower() for o in request.options]
        order = np.argsort(np.asarray(request.timestamps, dtype=np.float64), kind="stable")
        colors = self.frame_colors(np.asarray(request.frames)[order])
        times = [float(request.timestamps[i]) for i in order]
        question = request.question.lower()
        if options and all(o in self.palette for o in options):
            segments = list(dict.fromkeys(c for c in colors if c is not None))  # first-appearance order
            wanted = self._ordinal(question)
            if wanted is None:
                raise InputError(f"synthetic-reader cannot read question {request.item!r}: no ordinal")
            if not segments or wanted >= len(segments):
                return UNREADABLE
            color = segments[wanted] if wanted >= 0 else segments[-1]
            return self._letter(options.index(color)) if color in options else UNREADABLE
        if options and all(_QUARTER_RE.search(o) for o in options):
            named = [c for c in self.palette if re.search(rf"\b{c}\b", question)]
            if len(named) != 1 or request.duration <= 0:
                raise InputError(f"synthetic-reader cannot read question {request.item!r}: "
                                 "needs one colour name and the video duration")
            seen = [t for t, c in zip(times, colors) if c == named[0]]
            if not seen:
                return UNREADABLE
            quarter = min(3, int(4 * float(np.mean(seen)) / float(request.duration)))
            names = ["first", "second", "third", "last"]
            for i, option in enumerate(options):
                word = _QUARTER_RE.search(option).group(1).lower()
                if names.index("last" if word == "fourth" else word) == quarter:
                    return self._letter(i)
            return UNREADABLE
        raise InputError(f"synthetic-reader cannot read question {request.item!r}: "
                         "it only answers the synthetic benchmark's colour and quarter questions")

    @staticmethod
    def _ordinal(question: str) -> int | None:
        """0-based segment index asked for; -1 for the last; None when the question names none."""
        if re.search(r"\b(at the end|last)\b", question):
            return -1
        if re.search(r"\bbeginning\b|\bstart\b", question):
            return 0
        for i, word in enumerate(_ORDINALS):
            if re.search(rf"\b{word}\b", question):
                return i
        return None

    @staticmethod
    def _letter(index: int) -> str:
        return f"The answer is {'ABCDEFGHIJ'[index]}."
