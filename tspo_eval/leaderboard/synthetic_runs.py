"""Write lmms-eval output folders with known per-question outcomes (tests, benchmarks, docs examples).

The files are written by lmms-eval's own ``EvaluationTracker`` (``save_results_aggregated`` and
``save_results_samples``, exactly as ``lmms_eval`` does after an evaluation), so the layout, file
names and JSON keys are the real ones: ``OUT/<model dir>/<date>_results.json`` and
``OUT/<model dir>/<date>_samples_<task>.jsonl``.  Each sample's metric value is the ``tspo_*``
task dict ``{"question_id", "pred", "answer", "correct", "video", <breakdown fields>}``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

LETTERS = "ABCD"


def _model_args_string(model_args: Mapping[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in model_args.items())


def write_lmms_eval_run(
    output_path: str | Path,
    task: str,
    model_args: Mapping[str, object],
    outcomes: Mapping[str, bool],
    categories: Mapping[str, Mapping[str, object]] | None = None,
    model: str = "tspo_qwen2_5_vl",
    datetime_str: str = "20260101_120000",
    metric: str = "tspo_acc",
) -> Path:
    """Write one lmms-eval run of ``task``; returns the model folder.

    ``outcomes``: question id -> answered correctly; ``categories``: question id -> breakdown
    field -> value (a string, or a list for multi-valued breakdowns such as LVBench's).
    """
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

    args_text = _model_args_string(model_args)
    tracker = EvaluationTracker(output_path=str(output_path))
    tracker.general_config_tracker.log_experiment_args(
        model_source=model, model_args=args_text, system_instruction=None, chat_template=None,
        fewshot_as_multiturn=False)
    samples = []
    for doc_id, (qid, correct) in enumerate(outcomes.items()):
        answer = LETTERS[doc_id % 4]
        pred = answer if correct else LETTERS[(doc_id + 1) % 4]
        doc = {"question_id": qid, "question": f"question {qid}?", "answer": answer}
        value = {"question_id": qid, "pred": pred, "answer": answer, "correct": bool(correct),
                 "video": f"video_{doc_id // 3}.mp4", **dict((categories or {}).get(qid, {}))}
        samples.append({
            "doc_id": doc_id, "doc": doc, "target": answer, "arguments": [f"{doc['question']}\nAnswer:"],
            "resps": [[f"The answer is {pred}."]], "filtered_resps": [f"The answer is {pred}."],
            "token_counts": [None], "doc_hash": hashlib.sha256(json.dumps(doc).encode()).hexdigest(),
            metric: value,
        })
    accuracy = sum(map(bool, outcomes.values())) / max(len(outcomes), 1)
    results = {
        "results": {task: {"alias": task, f"{metric},none": accuracy, f"{metric}_stderr,none": "N/A"}},
        "group_subtasks": {task: []},
        "configs": {task: {"task": task, "output_type": "generate_until", "metric_list": [{"metric": metric}]}},
        "versions": {task: "Yaml"},
        "n-shot": {task: 0},
        "higher_is_better": {task: {metric: True}},
        "n-samples": {task: {"original": len(outcomes), "effective": len(outcomes)}},
        "config": {"model": model, "model_args": args_text, "batch_size": "1", "batch_sizes": [],
                   "device": "cpu", "limit": None, "gen_kwargs": ""},
        "git_hash": None,
        "date": datetime_str,
    }
    tracker.save_results_aggregated(results=results, samples={task: samples}, datetime_str=datetime_str)
    tracker.save_results_samples(task_name=task, samples=samples)
    return Path(output_path) / tracker.general_config_tracker.model_name_sanitized
