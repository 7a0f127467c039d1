"""Read back what VLMEvalKit's ``run.py`` recorded about each model x dataset of a run.

``run.py`` (local mode) gives every run an id (``T<date>-<time>``) and a folder
``<work-dir>/<model>/<id>/`` whose ``status.json`` it keeps up to date
(``vlmeval/smp/status_report.py``: ``upsert_run_status`` / ``upsert_dataset_status``)::

    {"eval_id": ..., "created_at": ISO time, "argv": [...], "model_name": ...,
     "datasets": {"<dataset>": {"status": "pending|infer|eval|done", "prediction_file": ...,
                                "skip_reason": ..., "error_message": ..., "metrics": {...}}}}

It catches the exception of a failed model x dataset, stores its text as ``error_message`` and
goes on to the next one; ``collect_run_benchmark_report`` (the source of its "Run Summary
Report") adds the inference failure count of each prediction file (answers holding its failure
marker).  :func:`status_failures` turns both into one line per failure.
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

#: ``skip_reason`` values of run.py that are not failures (the run was asked to stop there)
BENIGN_SKIPS = frozenset({
    "mode_infer", "official_submission_only_mmmu_test", "official_submission_only_mmt_bench",
    "external_submission_required", "test_split_without_ground_truth",
})
STATUS_FILE = "status.json"


def load_status(run_dir: Path) -> dict[str, Any]:
    """``<run_dir>/status.json`` as a dict (empty when absent or unreadable)."""
    try:
        data = json.loads((Path(run_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def status_failures(status: dict[str, Any], datasets: Sequence[str],
                    report_rows: Sequence[dict[str, Any]] = ()) -> list[str]:
    """One line per failed dataset of one model's run record.

    A dataset failed when run.py recorded an ``error_message``, skipped it for a reason other
    than the requested mode (``invalid_dataset``, ``No infer result found``, ...), left it
    unfinished, never recorded it, or when the report rows (``collect_run_benchmark_report``)
    count inference failures in its prediction file.
    """
    model = status.get("model_name", "?")
    entries = status.get("datasets") if isinstance(status.get("datasets"), dict) else {}
    rows = {str(r.get("benchmark")): r for r in report_rows}
    failures = []
    for name in datasets:
        entry = entries.get(name)
        if not isinstance(entry, dict):
            failures.append(f"{model} x {name}: VLMEvalKit recorded no status (run.py stopped before it?)")
            continue
        if entry.get("error_message"):
            failures.append(f"{model} x {name}: {entry['error_message']}")
        elif entry.get("skip_reason") and entry["skip_reason"] not in BENIGN_SKIPS:
            failures.append(f"{model} x {name}: skipped by VLMEvalKit ({entry['skip_reason']})")
        elif entry.get("status") != "done":
            failures.append(f"{model} x {name}: left unfinished (status {entry.get('status')!r})")
        row = rows.get(name) or {}
        failed, total = row.get("infer_failed") or 0, row.get("infer_total") or 0
        if failed:
            failures.append(f"{model} x {name}: {failed}/{total} answers are VLMEvalKit failures")
    return failures


def find_run_dirs(work_root: Path, models: Sequence[str], argv: Sequence[str],
                  started: datetime.datetime) -> dict[str, Path | None]:
    """The run folder of each model made by *this* ``run.py`` call (same argv, created after ``started``)."""
    found: dict[str, Path | None] = {}
    for model in models:
        best: tuple[str, Path] | None = None
        for status_file in sorted((Path(work_root) / model).glob(f"*/{STATUS_FILE}")):
            status = load_status(status_file.parent)
            if list(status.get("argv") or []) != list(argv):
                continue
            try:
                created = datetime.datetime.fromisoformat(str(status.get("created_at")))
            except ValueError:
                continue
            if created.tzinfo is None:
                created = created.astimezone()
            if created >= started and (best is None or str(created) > best[0]):
                best = (str(created), status_file.parent)
        found[model] = best[1] if best else None
    return found


def benchmark_report(run_dir: Path) -> list[dict[str, Any]]:
    """VLMEvalKit's own per-dataset report rows of a run folder (inference failure counts)."""
    try:
        from vlmeval.smp import collect_run_benchmark_report
    except ImportError:  # an older VLMEvalKit without the status report
        return []
    try:
        return list(collect_run_benchmark_report(str(run_dir)))
    except Exception as exc:  # noqa: BLE001 - its reporters read prediction files; a broken one must not hide the others
        logger.warning("VLMEvalKit's run report of {} failed: {}", run_dir, exc)
        return []


def run_dir_failures(run_dirs: dict[str, Path | None], models: Sequence[str], datasets: Sequence[str]) -> list[str]:
    """Failures of every model x dataset of one run.py call."""
    failures = []
    for model in models:
        run_dir = run_dirs.get(model)
        if run_dir is None:
            failures.append(f"{model}: VLMEvalKit wrote no run status for this call")
            continue
        failures += status_failures(load_status(run_dir), datasets, benchmark_report(run_dir))
    return failures
