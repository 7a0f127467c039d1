"""The normalised question record every benchmark loader produces."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tspo_eval.errors import AnnotationError

LETTERS = "ABCDEFGHIJ"


def letter(index: int) -> str:
    """Option letter of position ``index`` (0 -> "A"); AnnotationError when out of range."""
    if not 0 <= index < len(LETTERS):
        raise AnnotationError(f"option index {index} out of range 0..{len(LETTERS) - 1}")
    return LETTERS[index]


def letter_index(value: str) -> int:
    """Position of option letter ``value`` ("C" -> 2)."""
    pos = LETTERS.find(value.strip().upper()) if isinstance(value, str) and len(value.strip()) == 1 else -1
    if pos < 0:
        raise AnnotationError(f"not an option letter: {value!r}")
    return pos


#: the usual instruction after a multiple-choice question (lmms-eval's video MCQ tasks)
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def lettered_options(question: str, options: list[str] | tuple[str, ...], style: str = "dot") -> str:
    """``stem\nA. opt\nB. opt`` (``style="paren"``: ``(A) opt`` lines)."""
    if style == "paren":
        lines = [f"({letter(i)}) {opt}" for i, opt in enumerate(options)]
    else:
        lines = [f"{letter(i)}. {opt}" for i, opt in enumerate(options)]
    return question + "\n" + "\n".join(lines)


def multiple_choice_prompt(question: str, options: list[str] | tuple[str, ...], style: str = "dot") -> str:
    """A whole multiple-choice prompt: :func:`lettered_options` and :data:`ANSWER_INSTRUCTION`."""
    return f"{lettered_options(question, options, style)}\n{ANSWER_INSTRUCTION}"


@dataclass
class QuestionRecord:
    """One multiple-choice question of a benchmark, independent of the original file shape.

    ``video`` is relative to the benchmark's video root (see ``Benchmark.resolve_video``);
    ``options`` are the option texts without letters; ``answer`` is a letter "A"..;
    ``categories`` maps a breakdown name to the values this question counts in (LVBench
    questions can have several); ``time_spans`` are ground-truth (start, end) seconds.
    """

    benchmark: str
    question_id: str
    video: str
    question: str
    options: list[str]
    answer: str
    duration: float | None = None
    categories: dict[str, list[str]] = field(default_factory=dict)
    time_spans: list[tuple[float, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answer_index(self) -> int:
        return letter_index(self.answer)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (time spans as [start, end] lists)."""
        data = asdict(self)
        data["time_spans"] = [list(span) for span in self.time_spans]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QuestionRecord":
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["time_spans"] = [tuple(span) for span in values.get("time_spans") or []]
        values["categories"] = {k: list(v) for k, v in (values.get("categories") or {}).items()}
        return cls(**values)
