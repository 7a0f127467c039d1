"""A run: one model answering one benchmark with one frame source, as per-question outcomes,
and how runs are labelled (model, benchmark, frame source, frame budget) and named.

The readers (:mod:`~tspo_eval.leaderboard.lmms_runs`, :mod:`~tspo_eval.leaderboard.vlmeval_runs`)
build :class:`Run` objects; :mod:`~tspo_eval.leaderboard.runs` finds them on disk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.benchmarks.registry import find_benchmark
from tspo_eval.errors import InputError

#: frame sources a run can be labelled with
FRAME_SOURCES = ("uniform", "tspo", "clip", "index", "unknown")
_MODEL_KEYS = ("pretrained", "model_path", "model_name", "model_id", "vlm", "model", "path")
_FRAMES_KEYS = ("num_frames", "max_frames_num", "max_num_frames", "nframes", "max_frames", "frames", "nframe")


@dataclass
class Run:
    """Per-question outcomes of one model on one benchmark with one frame source.

    ``outcomes`` maps question id -> answered correctly; ``categories`` maps question id ->
    breakdown name -> the values the question counts in (may be empty: categories are a
    property of the question, so a leaderboard can take them from another run or the annotations).
    """

    name: str
    benchmark: str
    model: str
    frame_source: str
    num_frames: int | None
    outcomes: dict[str, bool]
    categories: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    host: str = ""
    path: str = ""
    task: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    duplicates: int = 0
    named: bool = False   # the name came from the command line (NAME=PATH)

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def correct(self) -> int:
        return sum(self.outcomes.values())

    @property
    def accuracy(self) -> float:
        """Percent correct over every question of the run (nan when empty)."""
        return 100.0 * self.correct / self.n if self.n else float("nan")

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (no per-question data)."""
        return {"name": self.name, "benchmark": self.benchmark, "model": self.model,
                "frame_source": self.frame_source, "num_frames": self.num_frames, "host": self.host,
                "path": self.path, "task": self.task, "n": self.n, "correct": self.correct,
                "accuracy": self.accuracy, "duplicates": self.duplicates, "details": self.details}


# ---- labelling ---------------------------------------------------------------------------------
def benchmark_from_name(text: str) -> str | None:
    """Benchmark named in a task / dataset / file name ("tspo_lvbench" -> "lvbench"), else None."""
    bench = find_benchmark(text)
    return bench.name if bench is not None else None


def parse_model_args(model_args: Any) -> dict[str, str]:
    """lmms-eval ``model_args`` ("a=1,b=x" string or dict) as a dict of strings."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items() if v is not None}
    out: dict[str, str] = {}
    if isinstance(model_args, str):
        for part in model_args.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip():
                out[key.strip()] = value.strip()
    return out


def short_model_name(value: str) -> str:
    """A readable model name: hub ids stay ("org/name"); local paths keep their last component."""
    value = value.strip().rstrip("/")
    if value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value:
        return Path(value.replace("\\", "/")).name or value
    return value


def frames_from_args(args: dict[str, str]) -> int | None:
    """The frame budget named in model arguments (first of num_frames, max_frames_num, ...)."""
    for key in _FRAMES_KEYS:
        value = args.get(key)
        if value is not None and re.fullmatch(r"\s*\d+\s*", str(value)):
            return int(value)
    return None


def is_tspo_model(lmms_model: str | None) -> bool:
    """Whether an lmms-eval model name is one of ours (``qwen2_5_vl_tspo``, ``llava_vid_tspo``, ...)."""
    return bool(lmms_model) and "tspo" in str(lmms_model).lower()


def _frame_source_defaults() -> dict[str, Any]:
    """Defaults of our models' TSPO model_args (frame_selection, num_frames, scorer)."""
    from tspo_eval.frame_source import FrameSourceOptions
    from tspo_eval.selector_options import SelectorOptions

    return {"frame_selection": FrameSourceOptions.frame_selection, "num_frames": SelectorOptions.num_frames,
            "scorer": SelectorOptions.scorer}


def frame_source_from_args(args: dict[str, str], lmms_model: str | None = None) -> str:
    """``frame_selection`` of our models: tspo (or clip when a CLIP scorer is used), index, uniform.

    Our models default to ``frame_selection=tspo``; a host's built-in model samples uniformly.
    """
    default = _frame_source_defaults()["frame_selection"] if is_tspo_model(lmms_model) else "uniform"
    selection = (args.get("frame_selection") or default).strip().lower()
    if selection == "tspo":
        scorer = args.get("scorer", "tspo").strip().lower()
        return "tspo" if scorer in ("", "tspo", "agent") else "clip"
    if selection in FRAME_SOURCES:
        return selection
    logger.warning("unknown frame_selection={!r}; labelled 'unknown'", selection)
    return "unknown"


def label_from_model_args(model_args: Any, fallback_model: str | None = None,
                          lmms_model: str | None = None) -> tuple[str, str, int | None]:
    """(model, frame source, frame budget) from lmms-eval ``model_args`` (``lmms_model``: the
    ``--model`` name, which tells our models, with their defaults, from the built-in ones)."""
    args = parse_model_args(model_args)
    model = next((args[k] for k in _MODEL_KEYS if args.get(k)), None) or fallback_model or "unknown-model"
    frames = frames_from_args(args)
    if frames is None and is_tspo_model(lmms_model):
        frames = int(_frame_source_defaults()["num_frames"])
    return short_model_name(model), frame_source_from_args(args, lmms_model), frames


def default_name(run: Run) -> str:
    """``<frame source>-<K>`` (e.g. "tspo-64"); the leaderboard adds the model on clashes."""
    return f"{run.frame_source}-{run.num_frames}" if run.num_frames else run.frame_source


def assign_names(runs: list[Run]) -> None:
    """Give unnamed runs unique names within each benchmark; named clashes are an InputError."""
    by_bench: dict[str, list[Run]] = {}
    for run in runs:
        by_bench.setdefault(run.benchmark, []).append(run)
    for bench, group in by_bench.items():
        named = [r.name for r in group if r.named]
        clash = {n for n in named if named.count(n) > 1}
        if clash:
            raise InputError(f"{bench}: several runs are named {sorted(clash)[0]!r}; give each run its own NAME=")
        taken = set(named)
        unnamed = [r for r in group if not r.named]
        base = {id(r): default_name(r) for r in unnamed}
        counts: dict[str, int] = {}
        for r in unnamed:
            counts[base[id(r)]] = counts.get(base[id(r)], 0) + 1
        for r in unnamed:
            name = base[id(r)]
            if counts[name] > 1 or name in taken:
                name = f"{r.model}:{name}"
            candidate, i = name, 2
            while candidate in taken:
                candidate, i = f"{name}#{i}", i + 1
            r.name = candidate
            taken.add(candidate)
