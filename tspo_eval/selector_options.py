"""How frames are selected: the one options type of every command, host model and the Python API.

:class:`SelectorOptions` holds what a :class:`~tspo_eval.selection.FrameSelector` needs to be
built and asked (scorer and its checkpoints, strategy, frame budget, candidate grid, decoder,
device, dtype, feature cache); it is frozen and validated once, when it is made. Who embeds it:

* :class:`~tspo_eval.frame_source.FrameSourceOptions` (lmms-eval and VLMEvalKit models), with the
  hosts' argument names mapped by :data:`HOST_ARGUMENTS` (one table);
* :class:`~tspo_eval.precompute.PrecomputeOptions` and the ``select`` / ``precompute`` commands,
  whose options are added by :func:`add_selector_arguments` and read by :meth:`SelectorOptions.from_args`.

:meth:`tspo_eval.selection.FrameSelector.build` makes the selector the options describe. This
module imports nothing heavy (no torch): the choice vocabularies live here and the agent reads them.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from typing import Any

from tspo_eval.errors import InputError

DEFAULT_AGENT = "hzf666/TSPO-0.4B"
#: the frame scorers: the TSPO agent, or raw CLIP similarity (the training-free baseline)
SCORERS: tuple[str, ...] = ("tspo", "clip")
#: how K frames are chosen from the candidates' scores (``tspo_eval.agent.selection``); ``auto`` is
#: resolved per benchmark (:func:`tspo_eval.benchmarks.resolve_strategy`)
STRATEGIES: tuple[str, ...] = ("topk", "bin-max", "aks", "uniform")
#: the off switch of the feature cache in host arguments (``feature_cache=off``)
CACHE_OFF = "off"

#: a host's name of a selector option -> SelectorOptions field. lmms-eval / VLMEvalKit model
#: arguments call the agent's device and dtype ``tspo_device`` / ``tspo_dtype`` (``device`` /
#: ``dtype`` are the VLM's there), the checkpoint ``tspo_path``, the grid rate ``candidate_fps``,
#: and the cache ``feature_cache`` (a folder or ``off``).
HOST_ARGUMENTS: dict[str, str] = {
    "scorer": "scorer", "tspo_path": "agent", "clip_model": "clip_model", "strategy": "strategy",
    "num_frames": "num_frames", "candidate_fps": "fps", "decoder": "decoder", "tspo_device": "device",
    "tspo_dtype": "dtype", "feature_cache": "cache_dir", "candidate_workers": "workers",
}


def choice_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` lower-cased when it is one of ``allowed``, else :class:`InputError` naming ``name``."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise InputError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return text


@dataclass(frozen=True)
class SelectorOptions:
    """What frames to select and how (see the module doc).

    Attributes:
        scorer: ``tspo`` (the temporal agent) or ``clip`` (raw CLIP similarity, the baseline).
        agent: TSPO checkpoint folder or hub id.
        clip_model: CLIP for ``scorer=clip`` (None: the agent's own CLIP).
        strategy: ``auto`` (the benchmark's default: bin-max for Video-MME, else topk), ``topk``,
            ``bin-max``, ``aks``, ``uniform``.
        num_frames: K, frames per question.
        fps: candidate rate of the 1 fps grid (TSPO: 1.0).
        decoder: ``auto`` (PyAV for H.264/HEVC, else decord with PyAV when decord cannot), ``decord``,
            ``pyav``, ``torchcodec``.
        device, dtype: where and how the scorer runs (None: CUDA + bf16 when available).
        cache_dir: feature-cache folder (None: ``$TSPO_EVAL_CACHE_DIR`` or the user cache).
        cache: read and write the feature cache.
        workers: processes that decode the candidates of videos not in the feature cache
            (:mod:`tspo_eval.candidate_pool`; a single video is split among them in segments).
            None: the command's default: the usable cores for ``precompute``, 1 (everything in
            this process) for ``select`` and the hosts.
    """

    scorer: str = "tspo"
    agent: str = DEFAULT_AGENT
    clip_model: str | None = None
    strategy: str = "auto"
    num_frames: int = 64
    fps: float = 1.0
    decoder: str = "auto"
    device: str | None = None
    dtype: str | None = None
    cache_dir: str | None = None
    cache: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        from tspo_eval.video import DECODERS

        num = self.num_frames
        if isinstance(num, bool) or not str(num).strip().isdigit() or int(num) <= 0:
            raise InputError(f"num_frames={num!r} must be a positive integer")
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise InputError(f"fps={self.fps!r} must be positive") from None
        if not fps > 0:
            raise InputError(f"fps={self.fps!r} must be positive")
        workers = self.workers
        if workers is not None and (isinstance(workers, bool) or not str(workers).strip().isdigit()
                                    or int(workers) <= 0):
            raise InputError(f"workers={workers!r} must be a positive integer")
        cache_dir, cache = self.cache_dir, bool(self.cache)
        if cache_dir is not None and str(cache_dir).strip().lower() == CACHE_OFF:
            cache_dir, cache = None, False
        normalised = {
            "scorer": choice_of("scorer", self.scorer, SCORERS),
            "agent": str(self.agent),
            "strategy": choice_of("strategy", self.strategy, ("auto", *STRATEGIES)),
            "num_frames": int(num),
            "fps": fps,
            "decoder": choice_of("decoder", self.decoder, DECODERS),
            "cache_dir": str(cache_dir) if cache_dir else None,
            "cache": cache,
            "workers": None if workers is None else int(workers),
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    # ---- from the hosts and the command line ---------------------------------------------------
    @classmethod
    def from_host_args(cls, arguments: dict[str, Any], owner: str = "frame source") -> "SelectorOptions":
        """From host argument names (:data:`HOST_ARGUMENTS`); :class:`InputError` naming ``owner``."""
        unknown = sorted(set(arguments) - set(HOST_ARGUMENTS))
        if unknown:
            raise InputError(f"{owner}: unknown selector option(s) {', '.join(unknown)}")
        try:
            return cls(**{HOST_ARGUMENTS[name]: value for name, value in arguments.items()})
        except InputError as exc:
            message = str(exc)
            for host_name in arguments:  # name the option as the user wrote it (candidate_fps=, not fps=)
                field_name = HOST_ARGUMENTS[host_name]
                if host_name != field_name and message.startswith(f"{field_name}="):
                    message = host_name + message[len(field_name):]
                    break
            raise InputError(f"{owner}: {message}") from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SelectorOptions":
        """From the options :func:`add_selector_arguments` added to a parser; errors name the flags."""
        try:
            return cls(**{name: getattr(args, name) for name in cls.field_names() if name != "cache"},
                       cache=not getattr(args, "no_cache", False))
        except InputError as exc:
            raise InputError(_in_flag_terms(str(exc))) from None

    def with_(self, **changes: Any) -> "SelectorOptions":
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)




def _in_flag_terms(message: str) -> str:
    """A validation message in command-line terms: ``num_frames=0 must be ...`` -> ``--num-frames must
    be ..., got 0``; ``strategy='x' is not one of ...`` -> ``unknown strategy 'x'; choose one of ...``."""
    match = re.match(r"^(\w+)=(.+?) is not one of (.+)$", message)
    if match:
        return f"unknown {match.group(1)} {match.group(2)}; choose one of {match.group(3)}"
    match = re.match(r"^(\w+)=(.+?) must be (.+)$", message)
    if match:
        return f"--{match.group(1).replace('_', '-')} must be {match.group(3)}, got {match.group(2)}"
    return message


class _FilteredGroup:
    """An argument group that adds only the options named in ``only`` (all when None)."""

    def __init__(self, group: Any, only: Collection[str] | None) -> None:
        self.group, self.only = group, None if only is None else set(only)

    def add_argument(self, flag: str, *more: str, **kwargs: Any) -> None:
        if self.only is None or flag.lstrip("-") in self.only:
            self.group.add_argument(flag, *more, **kwargs)


def add_selector_arguments(parser: argparse.ArgumentParser, *, strategy_default: str = "auto",
                           only: Collection[str] | None = None) -> None:
    """Add the selector options (``--agent``, ``--num-frames/-k``, ``--strategy``, ``--scorer``,
    ``--clip-model``, ``--fps``, ``--decoder``, ``--device``, ``--dtype``, ``--cache-dir``, ``--no-cache``)
    with the defaults of :class:`SelectorOptions`; read them back with :meth:`SelectorOptions.from_args`.

    ``only``: the options to add, by flag without dashes (``{"fps", "decoder"}``), for commands
    that name the others differently (``tspo-eval train``: ``--init``, ``--clip``)."""
    from tspo_eval.video import DECODERS

    group = _FilteredGroup(parser.add_argument_group("frame selection"), only)
    group.add_argument("--agent", default=DEFAULT_AGENT, help="TSPO checkpoint folder or hub id")
    group.add_argument("--num-frames", "-k", type=int, default=64, help="frames per question (K)")
    group.add_argument("--strategy", default=strategy_default,
                       help=f"auto (bin-max for Video-MME, else topk), {', '.join(STRATEGIES)}")
    group.add_argument("--scorer", default="tspo", help="tspo (the agent) or clip (raw CLIP similarity)")
    group.add_argument("--clip-model", default=None,
                       help="CLIP for --scorer clip: HF folder/hub id or open_clip:ARCH/TAG (default: the agent's CLIP)")
    group.add_argument("--fps", type=float, default=1.0, help="candidate rate in frames per second")
    group.add_argument("--decoder", default="auto", help=f"video decoder: {', '.join(DECODERS)}")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    group.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: bf16 on cuda, fp32 on cpu)")
    group.add_argument("--cache-dir", default=None,
                       help="feature cache folder (default: $TSPO_EVAL_CACHE_DIR or the user cache)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    group.add_argument("--workers", type=int, default=None,
                       help="processes decoding the candidates of videos not in the feature cache (a single "
                            "video is split among them); default: the usable cores (bounded by RAM) for "
                            "precompute, 1 (this process) otherwise")
