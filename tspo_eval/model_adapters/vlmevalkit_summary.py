"""Where a VLMEvalKit run's answers took their frames from, and how a run says so.

Pure helpers (no VLMEvalKit import), shared by the VLMEvalKit models and launcher and by the
leaderboard reader (:mod:`tspo_eval.leaderboard.vlmeval_runs`):

* VLMEvalKit's failure message, which frameless answers carry so that VLMEvalKit's own failure
  rate counts them and its retry logic re-asks them;
* the names of the files a run writes next to its predictions;
* :class:`FrameSourceSummary`: answers per frame source (from the run's side log of
  :class:`~tspo_eval.frame_index_cache.index_store.IndexRecord` lines, whose
  ``extra.frame_source`` says ``tspo`` / ``index`` / ``uniform`` / ``uniform:missing-from-index``
  / ``uniform:short-index-row``) plus frameless answers (from the prediction table), as one
  summary line and one leaderboard label such as ``index+uniform(3/64)+frameless(1/64)``.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

#: ``FAIL_MSG`` of VLMEvalKit (``vlmeval/inference_video.py``, also its video datasets): answers
#: holding it are retried by ``infer_data_job_video`` (retry_failed) and skipped by the evaluators' caches
FAIL_MSG = "Failed to obtain answer via API."
#: ``INFER_FAIL_MSG`` of ``vlmeval/smp/file.py``: the marker its status report counts as an inference failure
INFER_FAIL_MARKER = "Failed to obtain answer"
#: suffix of the per-run side log (IndexRecord JSONL) next to ``<model>_<dataset>.xlsx``
SIDE_LOG_SUFFIX = "_tspo_frames.jsonl"
#: question ids made up when a message could not be matched to its dataset row
FALLBACK_ID_RE = re.compile(r"^[^:]+:.+:[0-9a-f]{10}$")
#: frame-source values of the side log that mean "not from the requested source" (uniform frames instead)
UNIFORM_FALLBACKS = ("uniform:missing-from-index", "uniform:short-index-row")


def failure_answer(reason: str) -> str:
    """The answer of a question that got no frames: VLMEvalKit's failure message plus why."""
    reason = " ".join(str(reason).split())[:300]
    return f"{FAIL_MSG} [tspo-eval: no frames: {reason}]"


def is_failed_answer(answer: Any) -> bool:
    """Whether a prediction is a VLMEvalKit failure (ours or its own API failures)."""
    return isinstance(answer, str) and INFER_FAIL_MARKER in answer


def side_log_name(model: str, dataset: str) -> str:
    """File name of a run's frame side log: ``<model>_<dataset>_tspo_frames.jsonl``.

    It starts with VLMEvalKit's ``<model>_<dataset>`` prefix, so ``run.py`` links it into the
    model folder with the predictions.
    """
    return f"{model}_{dataset}{SIDE_LOG_SUFFIX}"


def generator_index_name(model: str, dataset: str) -> str:
    """File name of the ``TSPO_FrameIndex`` output in the work dir: ``<model>_<dataset>.jsonl``."""
    return f"{model}_{dataset}.jsonl"


def is_fallback_id(question_id: str) -> bool:
    """Whether ``question_id`` is a made-up ``<dataset>:<video>:<hash>`` id (no dataset row matched)."""
    return bool(FALLBACK_ID_RE.match(str(question_id)))


@dataclass
class FrameSourceSummary:
    """Answers of one model x dataset run by where their frames came from.

    ``requested``: the run's frame source (``tspo``, ``clip``, ``index``, ``uniform``);
    ``answers``: rows of the prediction table (or answers seen); ``sources``: logged answers by
    ``extra.frame_source``; ``frameless``: answers with the failure message;
    ``unidentified``: logged answers whose question id is a made-up one.
    """

    requested: str
    answers: int
    sources: dict[str, int] = field(default_factory=dict)
    frameless: int = 0
    unidentified: int = 0

    @property
    def logged(self) -> int:
        return sum(self.sources.values())

    @property
    def requested_key(self) -> str:
        """The side-log value of the requested source (a CLIP-scored run logs ``tspo``)."""
        return "tspo" if self.requested == "clip" else self.requested

    @property
    def from_requested(self) -> int:
        """Answers whose frames came from the requested source."""
        return self.sources.get(self.requested_key, 0)

    @property
    def uniform_fallbacks(self) -> int:
        """Answers that got uniform frames instead of the requested ones."""
        return sum(n for source, n in self.sources.items() if source != self.requested_key)

    @property
    def clean(self) -> bool:
        return not (self.uniform_fallbacks or self.frameless)

    def label(self) -> str:
        """``<requested>`` plus ``+uniform(n/N)`` / ``+frameless(n/N)`` for answers not from it."""
        label = self.requested
        if self.uniform_fallbacks:
            label += f"+uniform({self.uniform_fallbacks}/{self.answers})"
        if self.frameless:
            label += f"+frameless({self.frameless}/{self.answers})"
        return label

    def line(self, model: str, dataset: str) -> str:
        """One summary line for the log."""
        text = f"{model} x {dataset}: {self.from_requested}/{self.answers} answers from {self.requested} frames"
        if self.uniform_fallbacks:
            kinds = ", ".join(f"{s} {n}" for s, n in sorted(self.sources.items()) if s != self.requested_key)
            text += f"; {self.uniform_fallbacks} on uniform frames instead ({kinds})"
        if self.frameless:
            text += f"; {self.frameless} without frames (answer = VLMEvalKit's failure message)"
        unlogged = self.answers - self.logged - self.frameless
        if unlogged > 0:
            text += f"; {unlogged} not logged by this run (reused predictions)"
        if self.unidentified:
            text += f"; {self.unidentified} question ids not found in the dataset rows (made-up ids)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "answers": self.answers, "sources": dict(self.sources),
                "frameless": self.frameless, "unidentified": self.unidentified, "label": self.label()}


def summarize(requested: str, records: Iterable[Any], predictions: Iterable[Any] | None = None,
              answers: int | None = None) -> FrameSourceSummary:
    """Summary of a run from its side-log records (IndexRecord objects) and prediction texts.

    ``answers`` defaults to the number of predictions (else of records + frameless).
    """
    records = list(records)
    sources = Counter(str((r.extra or {}).get("frame_source") or requested) for r in records)
    predictions = list(predictions) if predictions is not None else []
    frameless = sum(1 for p in predictions if is_failed_answer(p))
    unidentified = sum(1 for r in records if is_fallback_id(r.question_id))
    total = answers if answers is not None else (len(predictions) or len(records) + frameless)
    return FrameSourceSummary(requested=requested, answers=int(total), sources=dict(sources),
                              frameless=frameless, unidentified=unidentified)


def requested_source(records: Iterable[Any]) -> str | None:
    """The frame source a run asked for, read back from its side-log records (None when empty)."""
    values: set[str] = set()
    scorers: set[str] = set()
    for record in records:
        values.add(str((record.extra or {}).get("frame_source") or ""))
        scorers.add(str(record.scorer).lower())
    if "index" in values or values & set(UNIFORM_FALLBACKS):
        return "index"
    if "tspo" in values:
        return "clip" if any(s.startswith("clip") for s in scorers) else "tspo"
    if "uniform" in values:
        return "uniform"
    return None
