"""Fault injection for the candidate workers (:mod:`tspo_eval.candidate_workers`): picklable
``on_job`` hooks that make a worker die on chosen videos the way a crashing decoder would."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CrashOn:
    """Kill the worker when it is handed a video whose file name contains ``name``.

    ``how``: ``segv`` (the worker sends itself SIGSEGV, as a decoder crash does), ``exit``
    (``os._exit(3)``, no cleanup) or ``hang`` (sleeps ``seconds``: a stuck decoder).
    """

    name: str
    how: str = "segv"
    seconds: float = 3600.0

    def __call__(self, path: str) -> None:
        if self.name not in os.path.basename(path):
            return
        if self.how == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(5)  # the signal is delivered before this returns
        elif self.how == "exit":
            os._exit(3)
        elif self.how == "hang":
            time.sleep(self.seconds)


@dataclass(frozen=True)
class SlowDown:
    """Sleep ``seconds`` before each video whose file name contains ``name`` (orders completions)."""

    name: str
    seconds: float

    def __call__(self, path: str) -> None:
        if self.name in os.path.basename(path):
            time.sleep(self.seconds)
