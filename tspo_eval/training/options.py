"""``TrainOptions``: every setting of a training run (the CLI builds one; the Python API takes one)."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from tspo_eval.errors import InputError
from tspo_eval.selector_options import SelectorOptions
from tspo_eval.training.advantages import OFF_POLICY_MODES
from tspo_eval.training.frame_store import DEFAULT_FRAME_PIXELS
from tspo_eval.training.policy import LOGPROBS


@dataclass(frozen=True)
class TrainOptions:
    """Options of ``tspo-eval train`` (see docs/training.md for each).

    ``selector``: the package's one :class:`~tspo_eval.selector_options.SelectorOptions`: its
    ``agent`` is ``--init`` (a TSPO-layout checkpoint, folder / hub id, or ``random``: a fresh head
    on ``clip_model`` = ``--clip``), and its ``decoder``, ``fps``, ``device``, ``dtype`` and
    ``cache_dir`` are the run's (``num_frames``/``strategy``/``scorer`` are evaluation settings;
    training samples K = :attr:`num_frames` frames per set from the policy).
    ``steps`` / ``epochs``: length of the run (one epoch when neither is given).
    ``eval``: ``BENCH=ANNOTATIONS:VIDEOS`` held-out set for the selection-only span hit rate.
    ``frame_store``: keep every candidate frame of each video decoded on disk (decoded once for the
    whole run) instead of decoding the sampled frames per prompt; ``frame_pixels``: the stored
    frames' pixel budget (area downscale, aspect kept; 0 = native size).
    """

    benchmark: str
    annotations: str
    videos: str
    answerer: str
    out: str
    selector: SelectorOptions = field(default_factory=SelectorOptions)
    steps: int | None = None
    epochs: float | None = None
    prompts_per_step: int = 8
    group_size: int = 8
    num_frames: int = 8
    lr: float = 5e-4
    tau0: float = 0.025
    logprob: str = "first-draw"
    off_policy: str = "none"
    needles: bool = False
    eval: str | None = None
    seed: int = 0
    save_every: int = 100
    resume: bool = False
    progress: bool | None = None
    frame_store: bool = True
    frame_pixels: int = DEFAULT_FRAME_PIXELS

    def validated(self) -> TrainOptions:
        """A copy with normalised values; InputError naming the first bad option."""
        def positive_int(name: str, value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
            return value

        for name in ("prompts_per_step", "group_size", "num_frames", "save_every"):
            positive_int(name, getattr(self, name))
        if isinstance(self.frame_pixels, bool) or not isinstance(self.frame_pixels, int) or self.frame_pixels < 0:
            raise InputError(f"--frame-pixels must be an integer >= 0 (0: native size), got {self.frame_pixels!r}")
        if self.group_size < 2:
            raise InputError(f"--group-size must be at least 2 (advantages compare samples), got {self.group_size}")
        if self.steps is not None and self.epochs is not None:
            raise InputError("give --steps or --epochs, not both")
        if self.steps is not None:
            positive_int("steps", self.steps)
        if self.epochs is not None and not (isinstance(self.epochs, (int, float)) and self.epochs > 0):
            raise InputError(f"--epochs must be positive, got {self.epochs!r}")
        for name in ("lr", "tau0"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"--{name} must be a positive number, got {value!r}")
        if self.tau0 < 0.01:
            raise InputError(f"--tau0 must be at least 0.01 (tau anneals to 0.01), got {self.tau0}")
        if self.logprob not in LOGPROBS:
            raise InputError(f"unknown --logprob {self.logprob!r}; choose one of {', '.join(LOGPROBS)}")
        if self.off_policy not in OFF_POLICY_MODES:
            raise InputError(f"unknown --off-policy {self.off_policy!r}; choose one of {', '.join(OFF_POLICY_MODES)}")
        if str(self.init).lower() == "random" and not self.clip:
            raise InputError("--init random needs --clip PATH (the CLIP the fresh head works on)")
        if self.eval is not None:
            from tspo_eval.training.data import parse_eval_spec

            parse_eval_spec(self.eval)
        init = "random" if str(self.init).lower() == "random" else str(self.init)
        return replace(self, selector=self.selector.with_(agent=init))

    @property
    def init(self) -> str:
        """``--init``: the checkpoint training starts from, or ``random``."""
        return self.selector.agent

    @property
    def clip(self) -> str | None:
        """``--clip``: the CLIP folder (with ``--init random``, or a training checkpoint's separate CLIP)."""
        return self.selector.clip_model

    @property
    def stored_frame_pixels(self) -> int:
        """The pixel budget of the frames the answerer sees: ``frame_pixels`` with the store, 0 (native) without."""
        return self.frame_pixels if self.frame_store else 0

    def settings(self) -> dict[str, Any]:
        """What a ``--resume`` must share with the run it continues (paths made absolute).

        The frame store itself is not a setting: at native size its frames are bitwise the decoded
        ones.  Its pixel budget is, when the store is on and the budget is not 0 (native, as every run
        before the store): ``frame_pixels`` is recorded only then.
        """
        data = asdict(self)
        for key in ("resume", "progress", "save_every", "out", "frame_store", "frame_pixels"):
            data.pop(key)
        if self.stored_frame_pixels:
            data["frame_pixels"] = self.stored_frame_pixels
        selector = data.pop("selector")
        data.update(init=selector["agent"], clip=selector["clip_model"], dtype=selector["dtype"],
                    decoder=selector["decoder"], fps=selector["fps"])  # device and cache folder may change
        for key in ("annotations", "videos"):
            data[key] = os.path.abspath(os.path.expanduser(data[key]))
        for key in ("init", "clip"):
            value = data[key]
            if value and value != "random" and Path(os.path.expanduser(value)).exists():
                data[key] = os.path.abspath(os.path.expanduser(value))
        return data
