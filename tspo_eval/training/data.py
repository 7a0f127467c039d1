"""Training items (from any benchmark loader or TSPO's training JSONL), their candidates, the oracle set.

A :class:`TrainingItem` is one multiple-choice question on one video: the answer gives R_A, the
ground-truth spans (when known) give R_T and the off-policy oracle frame set.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from torch import Tensor

from tspo_eval.errors import AnnotationError, InputError, TspoEvalError

TSPO10K = "tspo10k"
Span = tuple[float, float]


@dataclass
class TrainingItem:
    """One training prompt.

    Attributes:
        question_id, video (path of the video file), question (stem), options (texts), answer (letter).
        kind: ``specific`` (needle item: reward R_A + R_T) or ``general`` (reward R_A + 1).
        time_spans: ground-truth spans in seconds ([] when unknown).
        duration: seconds, when the annotation gives it.
        prompt: the question as the evaluation host words it (the benchmark's prompt, TSPO-10K's
            ``original_question``), so the agent is trained on the answers it is evaluated with;
            "" -> the usual multiple-choice prompt.
    """

    question_id: str
    video: str
    question: str
    options: list[str]
    answer: str
    kind: str = "general"
    time_spans: list[Span] = field(default_factory=list)
    duration: float | None = None
    prompt: str = ""


def training_sources() -> tuple[str, ...]:
    """Every accepted BENCH name: the package's benchmarks plus ``tspo10k``."""
    from tspo_eval.benchmarks import BENCHMARK_NAMES

    return (*BENCHMARK_NAMES, TSPO10K)


def load_training_items(benchmark: str, annotations: str | os.PathLike, video_root: str | os.PathLike) -> list[TrainingItem]:
    """Items of ``annotations`` read by ``benchmark``'s loader (or the ``tspo10k`` JSONL reader).

    Benchmark questions with time spans are needle ("specific") items, the others "general".

    Raises:
        InputError: unknown benchmark, a question without an answer, no questions.
        AnnotationError: malformed annotation file (line / question named).
    """
    if str(benchmark).strip().lower() == TSPO10K:
        return load_tspo10k(annotations, video_root)
    from tspo_eval.benchmarks import get_benchmark

    try:
        bench = get_benchmark(benchmark)
    except InputError:
        raise InputError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(training_sources())}") from None
    items = []
    for record in bench.load(annotations):
        if not record.answer or record.answer.strip().upper() not in "ABCDEFGHIJ"[: len(record.options)]:
            raise InputError(f"{bench.name} question {record.question_id} has no answer: its annotations cannot "
                             "serve as training data (the answer is the reward)")
        items.append(TrainingItem(
            question_id=record.question_id, video=str(bench.resolve_video(record, video_root)),
            question=record.question, options=list(record.options), answer=record.answer.strip().upper(),
            kind="specific" if record.time_spans else "general", time_spans=[tuple(s) for s in record.time_spans],
            duration=record.duration, prompt=bench.format_prompt(record),
        ))
    if not items:
        raise InputError(f"{annotations}: empty training set")
    return items


_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[\.\)]\s*(.*\S)\s*$")
_SOLUTION = re.compile(r"<answer>\s*\(?([A-Ja-j])\)?\.?\s*</answer>", re.IGNORECASE | re.DOTALL)


def parse_tspo10k_row(row: dict[str, Any], where: str, video_root: Path) -> TrainingItem:
    """One TSPO training row -> item; AnnotationError naming ``where`` on a malformed row.

    Row: ``{"video", "original_question" (stem + "A. ..." lines), "original_answer", "problem"
    (the stem), "solution": "<answer>a</answer>", "type": "general" | "specific"}``; optional
    ``"id"`` and ``"time_spans": [[start_s, end_s], ...]`` (an extension: R_T and the oracle).
    """
    def need(key: str) -> str:
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise AnnotationError(f"{where}: missing or empty field {key!r}")
        return value

    options = [m.group(2) for line in need("original_question").splitlines() if (m := _OPTION_LINE.match(line))]
    if len(options) < 2:
        raise AnnotationError(f"{where}: no lettered options ('A. ...' lines) in original_question")
    solution = _SOLUTION.search(need("solution"))
    if solution is None:
        raise AnnotationError(f"{where}: solution {row.get('solution')!r} is not '<answer>x</answer>'")
    answer = solution.group(1).upper()
    if "ABCDEFGHIJ".index(answer) >= len(options):
        raise AnnotationError(f"{where}: answer {answer} but only {len(options)} options")
    kind = str(row.get("type", "general")).strip().lower()
    if kind not in ("general", "specific"):
        raise AnnotationError(f"{where}: type {kind!r} is not 'general' or 'specific'")
    spans = []
    for span in row.get("time_spans") or []:
        if not isinstance(span, (list, tuple)) or len(span) != 2 or float(span[1]) < float(span[0]):
            raise AnnotationError(f"{where}: time span {span!r} is not [start, end]")
        spans.append((float(span[0]), float(span[1])))
    stem = row.get("problem") if isinstance(row.get("problem"), str) and row["problem"].strip() else None
    if stem is None:
        from tspo_eval.agent.text import question_stem

        stem = question_stem(need("original_question").replace("<image>", "").strip())
    return TrainingItem(
        question_id=str(row.get("id", where.replace(" ", ""))), video=str(video_root / need("video")),
        question=stem.replace("<image>", "").strip(), options=options, answer=answer, kind=kind,
        time_spans=spans, duration=None, prompt=need("original_question").replace("<image>", "").strip(),
    )


def load_tspo10k(path: str | os.PathLike, video_root: str | os.PathLike) -> list[TrainingItem]:
    """Items of a TSPO training JSONL file (TSPO-10K, the toy ``example1.jsonl``)."""
    from tspo_eval.benchmarks.base import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    root = Path(video_root).expanduser()
    items = []
    for where, row in read_jsonl(path):
        items.append(parse_tspo10k_row(row, f"{path}: {where}", root))
    seen: dict[str, int] = {}
    for item in items:  # ids must be unique (failures and metrics name them)
        count = seen.get(item.question_id, 0)
        seen[item.question_id] = count + 1
        if count:
            item.question_id = f"{item.question_id}#{count}"
    return items


def parse_eval_spec(text: str) -> tuple[str, str, str]:
    """``BENCH=ANNOTATIONS:VIDEOS`` -> (bench, annotations, videos); InputError when malformed."""
    bench, sep, rest = str(text).partition("=")
    annotations, sep2, videos = rest.rpartition(":")
    if not sep or not sep2 or not bench.strip() or not annotations.strip() or not videos.strip():
        raise InputError(f"--eval {text!r} is not BENCH=ANNOTATIONS:VIDEOS")
    return bench.strip(), annotations.strip(), videos.strip()


# ---- candidates -------------------------------------------------------------------------------
@dataclass
class Candidates:
    """The candidates a prompt samples from (one video's 1 fps grid, or a needle composite).

    Attributes:
        video: name for messages.
        frames: source frame numbers int64 ``[T]`` (in ``sources[source_index[t]]``).
        times: seconds float64 ``[T]`` as the answerer is told them.
        features: float32 ``[T, D]`` on the CPU.
        duration: seconds.
        sources: the video files the candidates come from.
        source_index: int64 ``[T]``, position in ``sources`` of each candidate.
    """

    video: str
    frames: np.ndarray
    times: np.ndarray
    features: Tensor
    duration: float
    sources: list[str] = field(default_factory=list)
    source_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = [self.video]
        if self.source_index is None:
            self.source_index = np.zeros(len(self.frames), dtype=np.int64)


class CandidateStore:
    """Candidate features of the training and evaluation videos, from the feature cache.

    Every video is decoded and encoded once (``prepare``); later reads come from a small in-memory
    LRU, else the on-disk :class:`~tspo_eval.frame_index_cache.FeatureCache` (through the selector).
    """

    def __init__(self, selector: Any, memory_items: int = 256) -> None:
        self.selector = selector
        self.memory_items = memory_items
        self._lru: OrderedDict[str, Candidates] = OrderedDict()

    def get(self, video: str) -> Candidates:
        """Candidates of ``video`` (VideoError / TspoEvalError when it cannot be read)."""
        hit = self._lru.get(video)
        if hit is not None:
            self._lru.move_to_end(video)
            return hit
        meta, grid, feats = self.selector.candidate_features(video)
        grid = np.asarray(grid, dtype=np.int64)
        times = np.asarray(self.selector.candidate_times(video), dtype=np.float64)  # presentation times (VFR-safe)
        found = Candidates(video, grid, times, feats.float().clone(), float(meta.duration))  # clone: out of inference mode
        self._lru[video] = found
        while len(self._lru) > self.memory_items:
            self._lru.popitem(last=False)
        return found

    def prepare(self, videos: Sequence[str], progress: bool = False) -> dict[str, str]:
        """Encode every video not yet cached; returns ``{video: reason}`` for those that failed."""
        from tqdm.auto import tqdm

        failures: dict[str, str] = {}
        for video in tqdm(list(dict.fromkeys(videos)), desc="candidate features", unit="video",
                          disable=None if progress else True, leave=False):
            try:
                self.get(video)
            except TspoEvalError as exc:
                failures[video] = str(exc)
            except (RuntimeError, OSError, ValueError) as exc:  # decoder errors of broken files
                failures[video] = f"{video}: {type(exc).__name__}: {exc}"
        for video, reason in failures.items():
            logger.warning("skipping video {}: {}", video, reason)
        return failures


def oracle_positions(times: np.ndarray, spans: Sequence[Span], num_frames: int) -> np.ndarray | None:
    """The off-policy "oracle" frame set: K candidate positions from the ground-truth spans, temporal order.

    With at least K candidates inside the spans, K of them evenly spaced (``round(linspace)``);
    with fewer, all of them plus the candidates nearest to a span.  None without spans.

    Args:
        times: candidate times in seconds ``[T]``.
    """
    if not spans:
        return None
    t = np.asarray(times, dtype=np.float64)
    bounds = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    gap = np.maximum(bounds[None, :, 0] - t[:, None], t[:, None] - bounds[None, :, 1]).clip(min=0.0).min(axis=1)
    inside = np.flatnonzero(gap == 0.0)
    k = min(int(num_frames), len(t))
    if len(inside) >= k:
        chosen = inside[np.round(np.linspace(0, len(inside) - 1, k)).astype(np.int64)]
    else:
        nearest = np.lexsort((t, gap))  # by distance to a span, then time
        chosen = nearest[:k]
    return np.sort(np.unique(chosen)).astype(np.int64)
