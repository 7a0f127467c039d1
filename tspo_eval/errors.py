"""Error types shared by every part of tspo-eval.

Each error names the item it is about (a video path, a checkpoint, a question id) so a batch
job can log it, count it as a failure and carry on.  The CLI prints ``str(error)`` without a
traceback and exits with status 2.
"""
from __future__ import annotations


class TspoEvalError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class InputError(TspoEvalError, ValueError):
    """A bad option or argument: unknown strategy/decoder, K <= 0, empty question, ..."""


class VideoError(TspoEvalError):
    """A video that cannot be used: missing, empty, truncated, not a video, no video stream, bad fps."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointError(TspoEvalError):
    """A checkpoint that cannot serve as a TSPO agent (missing selector weights, wrong shapes, ...)."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


class AnnotationError(TspoEvalError):
    """A malformed annotation or prediction file (names the file and the line / question id)."""
