"""The one reader of lmms-eval samples files (``<date>_samples_<task>.jsonl``): one JSON object per
answered doc, with the task's per-question metric dicts beside lmms-eval's own keys.

What the package reads from a sample (the leaderboard's outcomes, the scorer's prediction text,
the frames an answer used) all goes through :func:`iter_samples` and :func:`metric_dicts`.
Host-independent: it reads files, it imports no lmms-eval.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tspo_eval.errors import AnnotationError

#: lmms-eval's own keys of a samples line (everything else is a metric of the task)
SAMPLE_KEYS = frozenset({"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "doc_hash",
                         "prompt_hash", "target_hash", "input", "input_media", "token_counts"})
#: question-id keys of a metric dict, in the order they are read
METRIC_ID_KEYS = ("question_id", "id", "uid", "qid")


def iter_samples(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, sample)`` of every non-empty line; :class:`AnnotationError` naming a bad line."""
    path = Path(path)
    with path.open("r", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnnotationError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(sample, dict):
                raise AnnotationError(f"{path}: line {lineno}: not a JSON object")
            yield lineno, sample


def metric_dicts(sample: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The per-question metric dicts of one sample, ours (``tspo_*``) first."""
    found = [(key, value) for key, value in sample.items() if key not in SAMPLE_KEYS and isinstance(value, dict)]
    return sorted(found, key=lambda kv: not kv[0].startswith("tspo"))


def metric_question_id(metric: dict[str, Any]) -> str | None:
    """The question id a metric dict carries (:data:`METRIC_ID_KEYS`), as text."""
    value = next((metric[key] for key in METRIC_ID_KEYS if metric.get(key) is not None), None)
    return None if value is None or isinstance(value, (dict, list)) else str(value)
