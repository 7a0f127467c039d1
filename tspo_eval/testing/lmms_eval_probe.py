"""Probe of the installed lmms-eval: one real evaluation of ``tspo_synthetic`` with a VLM-free TSPO model.

``python -m tspo_eval.testing.lmms_eval_probe OUT_DIR`` runs lmms-eval's own ``simple_evaluate``
(and saves the run with its own ``EvaluationTracker``, as ``python -m lmms_eval`` does) with
:class:`ProbeLmms`: our :class:`~tspo_eval.model_adapters.lmms_eval_common.TspoLmms` code path
(request parsing, uniform frames from the :class:`~tspo_eval.frame_source.FrameSource`, the
in-process frame record) answering ``"A"`` without a VLM.  It writes ``OUT_DIR/probe.json``: what
lmms-eval handed the model (request class, argument types, ``task_dict``) and where the run's
files are, for ``tests/test_host_contracts.py`` to check.  The synthetic benchmark comes from
``$TSPO_EVAL_SYNTHETIC_ANNOTATIONS`` / ``$TSPO_EVAL_SYNTHETIC_VIDEOS`` (else it is built).

Run in its own process: ``simple_evaluate`` patches process-wide state (file locks, ``ssl``).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tspo_eval.atomic_files import atomic_write
from tspo_eval.model_adapters.lmms_eval_common import TspoLmms

PROBE_TASK = "tspo_synthetic"
PROBE_FRAMES = 3


class ProbeLmms(TspoLmms):
    """A TSPO lmms-eval model without a VLM: uniform frames, answer ``"A"``; notes every request."""

    model_name = "probe_tspo"

    def __init__(self, num_frames: int = PROBE_FRAMES, decoder: str = "pyav") -> None:
        super().__init__()
        self._setup_runtime("cpu", 1)
        self._setup_frames({"frame_selection": "uniform", "num_frames": num_frames, "decoder": decoder}, None)
        self.requests_seen: list[dict[str, Any]] = []
        self.frames_seen: dict[str, list[int]] = {}

    def generate_until(self, requests) -> list[str]:
        for request in requests:
            self.requests_seen.append(self._describe(request))
        return super().generate_until(requests)

    def _describe(self, request: Any) -> dict[str, Any]:
        """What lmms-eval put into one request, as plain JSON."""
        args = request.args
        seen: dict[str, Any] = {"class": f"{type(request).__module__}.{type(request).__qualname__}",
                                "request_type": getattr(request, "request_type", None),
                                "arg_types": [type(a).__name__ if not callable(a) else "callable" for a in args]}
        try:
            doc = self.task_dict[args[4]][args[5]][args[3]]
            seen.update(task=args[4], split=args[5], doc_id=args[3], doc_question_id=doc.get("question_id"),
                        visual=[os.fspath(v) for v in args[2](doc)])
        except Exception as exc:  # noqa: BLE001 - the probe reports what it found, the test judges
            seen["task_dict_error"] = f"{type(exc).__name__}: {exc}"
        return seen

    def _answer(self, context: str, frames: Any, result: Any, gen_kwargs: dict) -> str:
        """uint8 frames [K,H,W,3] in, ``"A"`` out (the frame numbers are noted per video)."""
        self.frames_seen[Path(result.video).name] = [int(i) for i in result.frame_indices]
        return "A"


def run_probe(out_dir: str | Path, tasks_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate :class:`ProbeLmms` on ``tspo_synthetic`` through lmms-eval; returns (and writes) the report."""
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker
    from lmms_eval.tasks import TaskManager

    from tspo_eval.cli.tasks_path import tasks_dir as default_tasks_dir

    out = Path(out_dir)
    model = ProbeLmms()
    tracker = EvaluationTracker(output_path=str(out))
    results = simple_evaluate(model=model, tasks=[PROBE_TASK], log_samples=True, evaluation_tracker=tracker,
                              task_manager=TaskManager(include_path=str(tasks_dir or default_tasks_dir())),
                              batch_size=1, device="cpu")
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples, datetime_str=str(results["date"]))
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    report = {"pid": os.getpid(), "requests": model.requests_seen, "frames": model.frames_seen,
              "results_files": sorted(str(p) for p in out.rglob("*_results.json")),
              "samples_files": sorted(str(p) for p in out.rglob("*_samples_*.jsonl")),
              "metrics": {t: {k: v for k, v in r.items() if isinstance(v, (int, float, str))}
                          for t, r in results["results"].items()}}
    atomic_write(out / "probe.json", json.dumps(report, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m tspo_eval.testing.lmms_eval_probe OUT_DIR [TASKS_DIR]", file=sys.stderr)
        return 2
    run_probe(argv[0], argv[1] if len(argv) > 1 else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
