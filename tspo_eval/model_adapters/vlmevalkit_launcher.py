"""Run VLMEvalKit with the TSPO models and datasets registered in-process.

VLMEvalKit has no plugin mechanism: models live in ``vlmeval.config.supported_VLM`` and video
datasets in ``vlmeval.dataset.video_dataset_config.supported_video_datasets`` (+ the class list
``vlmeval.dataset.DATASET_CLASSES`` that ``DATASET_TYPE`` / ``DATASET_MODALITY`` consult). This
module adds our entries to those objects, then hands over to VLMEvalKit's own driver:

* ``run`` - VLMEvalKit's ``run.py`` (found next to the ``vlmeval`` package in a git checkout or
  an editable install), executed as ``__main__`` with the given arguments: its inference
  (``infer_data_job_video``), its ``torchrun`` data parallelism, its output layout and evaluation;
* ``api`` - for installs without ``run.py``: ``build_dataset`` -> ``infer_data_job_video`` ->
  ``dataset.evaluate(pred_file)``, the same functions ``run.py`` calls.

``vlmeval`` is imported only here, lazily, so the package works without VLMEvalKit.
"""
from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.errors import InputError

INSTALL_HINT = (
    "VLMEvalKit is not installed (it is not on PyPI): git clone https://github.com/open-compass/VLMEvalKit "
    "&& pip install -e VLMEvalKit (or put the checkout on PYTHONPATH)"
)
DRIVERS = ("auto", "run", "api")


def require_vlmeval() -> Any:
    """The ``vlmeval`` package, or :class:`InputError` saying how to install it."""
    try:
        return importlib.import_module("vlmeval")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "vlmeval":
            raise InputError(INSTALL_HINT) from None
        raise InputError(f"VLMEvalKit is installed but does not import: missing package {exc.name!r} "
                         f"(pip install {exc.name})") from None


def register(model_overrides: dict[str, Any] | None = None, model_names: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Add the TSPO models and datasets to VLMEvalKit's tables (idempotent); returns the names added."""
    require_vlmeval()
    import vlmeval.dataset as vdataset
    from vlmeval.config import supported_VLM
    from vlmeval.dataset.video_dataset_config import supported_video_datasets

    from tspo_eval.model_adapters import vlmevalkit_models
    from tspo_eval.model_adapters.vlmevalkit_lvbench import (
        dataset_classes,
        dataset_table,
    )

    models = vlmevalkit_models.model_table(model_overrides)
    supported_VLM.update(models)
    import vlmeval.vlm as vvlm

    for cls in (vlmevalkit_models.FrameIndexGenerator, vlmevalkit_models.TspoVideoLLM):
        setattr(vvlm, cls.__name__, cls)  # for --config files naming {"class": ...}
    datasets = dataset_table()
    supported_video_datasets.update(datasets)
    for name, cls in dataset_classes().items():
        if cls not in vdataset.DATASET_CLASSES:
            vdataset.DATASET_CLASSES.append(cls)
        if name not in vdataset.SUPPORTED_DATASETS:
            vdataset.SUPPORTED_DATASETS.append(name)
        setattr(vdataset, cls.__name__, cls)
    unknown = [m for m in (model_names or []) if m not in supported_VLM]
    if unknown:
        raise InputError(f"unknown VLMEvalKit model(s) {', '.join(unknown)}; TSPO models: {', '.join(models)}")
    logger.debug(f"registered in VLMEvalKit: models {list(models)}, datasets {list(datasets)}")
    return {"models": list(models), "datasets": list(datasets)}


def find_run_script() -> Path | None:
    """VLMEvalKit's ``run.py`` next to the ``vlmeval`` package (git checkout / editable install)."""
    vlmeval = require_vlmeval()
    candidate = Path(vlmeval.__file__).resolve().parent.parent / "run.py"
    return candidate if candidate.is_file() else None


def set_dataset_locations(locations: dict[str, tuple[str | None, str | None]]) -> None:
    """Export ``TSPO_EVAL_<PREFIX>_ANNOTATIONS`` / ``_VIDEOS`` for our dataset classes."""
    from tspo_eval.benchmarks import get_benchmark

    for benchmark, (annotation_file, videos) in locations.items():
        prefix = get_benchmark(benchmark).env_prefix
        if annotation_file:
            os.environ[f"TSPO_EVAL_{prefix}_ANNOTATIONS"] = str(Path(annotation_file).resolve())
        if videos:
            os.environ[f"TSPO_EVAL_{prefix}_VIDEOS"] = str(Path(videos).resolve())


def run_vlmevalkit(models: Sequence[str], datasets: Sequence[str], *, work_dir: str = "./outputs", mode: str = "all",
                   model_overrides: dict[str, Any] | None = None, driver: str = "auto",
                   extra_args: Sequence[str] = ()) -> int:
    """Register, then run VLMEvalKit's inference and evaluation for ``models`` x ``datasets``."""
    if driver not in DRIVERS:
        raise InputError(f"driver {driver!r} is not one of {', '.join(DRIVERS)}")
    overrides = dict(model_overrides or {})
    overrides.setdefault("selection_log", str(Path(work_dir).resolve() / "tspo_frames_{task}.rank{rank}.jsonl"))
    if "TSPO_FrameIndex" in models:
        overrides.setdefault("index_out", str(Path(work_dir).resolve() / "TSPO_FrameIndex_{task}.rank{rank}.jsonl"))
    register(_split_overrides(overrides, models), models)
    script = find_run_script() if driver in ("auto", "run") else None
    if driver == "run" and script is None:
        raise InputError("VLMEvalKit's run.py was not found next to the vlmeval package; use --driver api")
    try:
        if script is not None:
            status = _run_script(script, models, datasets, work_dir, mode, extra_args)
        else:
            status = _run_api(models, datasets, work_dir, mode)
    finally:
        _merge_side_logs(overrides)
    return status


def _split_overrides(overrides: dict[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Drop arguments a requested model kind does not take (``index_out`` only suits the generator)."""
    if "index_out" in overrides and any(m != "TSPO_FrameIndex" for m in models):
        raise InputError("index_out applies to TSPO_FrameIndex only; run it separately from the VLMs")
    if models and all(m == "TSPO_FrameIndex" for m in models):
        overrides.pop("selection_log", None)
    return overrides


def _run_script(script: Path, models, datasets, work_dir: str, mode: str, extra_args: Sequence[str]) -> int:
    argv = [str(script), "--model", *models, "--data", *datasets, "--work-dir", str(work_dir), "--mode", mode,
            *extra_args]
    logger.info(f"VLMEvalKit run.py: {' '.join(argv[1:])}")
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:  # argparse errors and explicit exits
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv = saved
    return 0


def _run_api(models, datasets, work_dir: str, mode: str) -> int:
    from vlmeval.dataset import build_dataset
    from vlmeval.inference_video import infer_data_job_video
    from vlmeval.smp import get_pred_file_path

    for model_name in models:
        model: Any = model_name
        for dataset_name in datasets:
            dataset = build_dataset(dataset_name)
            if dataset is None:
                raise InputError(f"VLMEvalKit could not build dataset {dataset_name!r}")
            out_dir = Path(work_dir) / model_name
            out_dir.mkdir(parents=True, exist_ok=True)
            result_file = get_pred_file_path(str(out_dir), model_name, dataset_name, use_env_format=True)
            if mode != "eval":
                model = infer_data_job_video(model, work_dir=str(out_dir), model_name=model_name, dataset=dataset,
                                             result_file=result_file)
            if mode != "infer":
                scores = dataset.evaluate(result_file)
                logger.info(f"{model_name} x {dataset_name}: {scores}")
    return 0


def _merge_side_logs(overrides: dict[str, Any]) -> None:
    """Rank 0 merges the per-rank frame logs / index files into one file per dataset."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    from tspo_eval.model_adapters.lmms_eval_common import merge_rank_logs

    for key in ("selection_log", "index_out"):
        template = overrides.get(key)
        if template:
            merge_rank_logs(str(template))
