"""Evaluation runs as per-question outcomes, labelled by model, benchmark, frame source and budget.

A *run* is one model answering one benchmark with one frame source.  Readers:

* lmms-eval output folders (``OUT/<model dir>/<date>_results.json`` + ``<date>_samples_<task>.jsonl``),
  see :mod:`tspo_eval.leaderboard.lmms_runs`;
* VLMEvalKit per-question files (``*_score.xlsx`` / ``.csv`` / ``.tsv`` or a prediction
  ``.xlsx`` / ``.tsv``), see :mod:`tspo_eval.leaderboard.vlmeval_runs`;
* ``tspo-eval score --json --per-question`` outputs (their ``per_question`` map).

:func:`load_runs` takes a command-line spec ``[NAME=]PATH`` and returns every run found there.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from loguru import logger

from tspo_eval.errors import AnnotationError, InputError
from tspo_eval.leaderboard.lmms_runs import is_lmms_file, read_output_dir
from tspo_eval.leaderboard.lmms_runs import read_file as read_lmms_file
from tspo_eval.leaderboard.run import (  # noqa: F401 - the labelling helpers are part of this module's API
    FRAME_SOURCES,
    Run,
    assign_names,
    benchmark_from_name,
    default_name,
    label_from_model_args,
    parse_model_args,
    short_model_name,
)
from tspo_eval.leaderboard.vlmeval_runs import read_dir as read_vlmeval_dir
from tspo_eval.leaderboard.vlmeval_runs import read_file as read_vlmeval_file


# ---- loading -----------------------------------------------------------------------------------
def split_spec(spec: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` -> (NAME, PATH); a spec that is an existing path is taken whole."""
    if os.path.exists(spec) or "=" not in spec:
        return None, Path(spec)
    name, _, path = spec.partition("=")
    if not name.strip():
        raise InputError(f"empty run name in {spec!r}")
    return name.strip(), Path(path)


def load_runs(spec: str, annotations: Mapping[str, Sequence[Any]] | None = None) -> list[Run]:
    """Every run found at ``[NAME=]PATH`` (a folder or one file); InputError when none.

    ``annotations`` (benchmark -> question records) lets VLMEvalKit prediction tables without a
    score column be re-scored and rows identified only by ``index`` be mapped to question ids.
    """
    name, path = split_spec(spec)
    if not path.exists():
        raise InputError(f"run not found: {path}")
    runs: list[Run]
    if path.is_dir():
        runs = read_output_dir(path)
        for file in sorted(path.rglob("*.json")):
            if is_lmms_file(file):
                continue
            try:
                if (found := _maybe_score_json(file)) is not None:
                    runs.append(found)
            except AnnotationError as exc:   # one unusable file does not sink the folder
                logger.warning("skipped {}", exc)
        runs += read_vlmeval_dir(path, annotations)
    elif is_lmms_file(path):
        runs = read_lmms_file(path)
    elif path.suffix.lower() == ".json" and (run := _maybe_score_json(path)) is not None:
        runs = [run]
    else:
        runs = [read_vlmeval_file(path, annotations)]
    if not runs:
        raise InputError(f"{path}: no lmms-eval results/samples, VLMEvalKit score file or "
                         f"'tspo-eval score --json' output found")
    if name is not None:
        for run in runs:
            run.name, run.named = name, True
    for run in runs:
        logger.info("{}: {} {} on {} ({} questions, {:.1f}%)", run.path, run.model,
                    default_name(run), run.benchmark, run.n, run.accuracy)
    return runs


def load_all(specs: Iterable[str], annotations: Mapping[str, Sequence[Any]] | None = None) -> list[Run]:
    """Runs of every spec, uniquely named per benchmark."""
    runs = [run for spec in specs for run in load_runs(spec, annotations)]
    assign_names(runs)
    return runs


def _maybe_score_json(path: Path) -> Run | None:
    """A ``tspo-eval score --json`` output (a dict with a ``per_question`` map), else None.

    Questions listed in ``missing_ids`` (no prediction) are left out of the run's outcomes, so a
    leaderboard reports them as answered by one run only.  Optional keys ``model``,
    ``model_args``, ``frame_source``, ``num_frames`` label the run (else use ``--run-info``).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and "per_question" not in data and {"benchmark", "overall", "rule"} <= set(data):
        raise AnnotationError(f"{path}: a score summary without per-question verdicts; write it with "
                              f"'tspo-eval score --json --per-question'")
    if not isinstance(data, dict) or not isinstance(data.get("per_question"), dict):
        return None
    benchmark = str(data.get("benchmark") or benchmark_from_name(path.name) or "")
    if not benchmark:
        raise AnnotationError(f"{path}: score output names no benchmark (add a 'benchmark' key "
                              f"or put the benchmark name in the file name)")
    model, source, frames = label_from_model_args(data.get("model_args") or {}, data.get("model") or path.stem)
    source = str(data.get("frame_source") or (source if data.get("model_args") else "unknown"))
    if str(data.get("num_frames", "")).isdigit():
        frames = int(data["num_frames"])
    missing = {str(q) for q in data.get("missing_ids") or ()}
    outcomes = {str(q): bool(v) for q, v in data["per_question"].items() if str(q) not in missing}
    return Run(name="", benchmark=benchmark, model=model, frame_source=source, num_frames=frames,
               outcomes=outcomes, host="tspo-eval score", path=str(path),
               details={"rule": data.get("rule"), "unparsed": data.get("unparsed"), "missing": len(missing)})
