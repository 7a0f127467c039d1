"""Run VLMEvalKit with the TSPO models and datasets registered in-process.

VLMEvalKit has no plugin mechanism: models live in ``vlmeval.config.supported_VLM`` and video
datasets in ``vlmeval.dataset.video_dataset_config.supported_video_datasets`` (+ the class list
``vlmeval.dataset.DATASET_CLASSES`` that ``DATASET_TYPE`` / ``DATASET_MODALITY`` consult, and the
``vlmeval.vlm`` / ``vlmeval.dataset`` attributes that ``--config`` files name as ``"class"``).
This module adds our entries there, wraps ``vlmeval.inference_video.infer_data_job_video`` in a
job scope (:mod:`~tspo_eval.model_adapters.vlmevalkit_jobs`), then hands over to VLMEvalKit:

* ``run`` - VLMEvalKit's ``run.py`` (found next to the ``vlmeval`` package in a git checkout or
  an editable install), executed as ``__main__`` with the given arguments: its inference, its
  ``torchrun`` data parallelism, its output layout and evaluation;
* ``api`` - for installs without ``run.py``: ``build_dataset`` -> ``infer_data_job_video`` ->
  ``dataset.evaluate(pred_file)``, the same functions ``run.py`` calls.

``run.py`` catches the error of each model x dataset and records it in its run folder's
``status.json``; the launcher reads those records back (:mod:`~tspo_eval.model_adapters.vlmevalkit_status`)
and exits non-zero, naming them, when any model x dataset failed.

``vlmeval`` is imported only here, lazily, so the package works without VLMEvalKit.
"""
from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import runpy
import sys
from collections.abc import Iterator, Sequence
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
    """Add the TSPO models and datasets to VLMEvalKit's tables (idempotent); returns the names added.

    ``model_names``: the registered-model names the run uses (checked to exist).
    """
    require_vlmeval()
    import vlmeval.dataset as vdataset
    import vlmeval.vlm as vvlm
    from vlmeval.config import supported_VLM
    from vlmeval.dataset.video_dataset_config import supported_video_datasets

    from tspo_eval.model_adapters import vlmevalkit_models
    from tspo_eval.model_adapters.vlmevalkit_lvbench import (
        dataset_classes,
        dataset_table,
    )

    models = vlmevalkit_models.model_table(model_overrides)
    supported_VLM.update(models)
    for cls in (vlmevalkit_models.FrameIndexGenerator, vlmevalkit_models.TspoVideoLLM):
        setattr(vvlm, cls.__name__, cls)  # config files may name them: {"class": "TspoVideoLLM", ...}
    datasets = dataset_table()
    supported_video_datasets.update(datasets)
    for name, cls in dataset_classes().items():
        if cls not in vdataset.DATASET_CLASSES:
            vdataset.DATASET_CLASSES.append(cls)
        if name not in vdataset.SUPPORTED_DATASETS:
            vdataset.SUPPORTED_DATASETS.append(name)
        setattr(vdataset, cls.__name__, cls)   # config files: {"class": "LVBench", "dataset": "LVBench", ...}
    unknown = [m for m in (model_names or []) if m not in supported_VLM]
    if unknown:
        raise InputError(f"unknown VLMEvalKit model(s) {', '.join(unknown)}; TSPO models: {', '.join(models)}")
    logger.debug("registered in VLMEvalKit: models {}, datasets {}", list(models), list(datasets))
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
        bench = get_benchmark(benchmark)
        if annotation_file:
            os.environ[bench.env_var("ANNOTATIONS")] = str(Path(annotation_file).resolve())
        if videos:
            os.environ[bench.env_var("VIDEOS")] = str(Path(videos).resolve())


def read_config(path: str | os.PathLike) -> tuple[list[str], list[str], list[str]]:
    """(model names, dataset names, registered-model shortcuts) of a VLMEvalKit ``--config`` JSON.

    Entries without ``"class"`` are shortcuts to registered models (``supported_VLM``), so they must exist.
    """
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--config {path}: not a JSON file ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or not isinstance(config.get("data"), dict):
        raise InputError(f"--config {path}: needs a 'model' and a 'data' object (VLMEvalKit's config layout)")
    if not config["model"] or not config["data"]:
        raise InputError(f"--config {path}: 'model' and 'data' must each name at least one entry")
    shortcuts = [name for name, spec in config["model"].items() if not (isinstance(spec, dict) and "class" in spec)]
    return list(config["model"]), list(config["data"]), shortcuts


def run_vlmevalkit(models: Sequence[str] = (), datasets: Sequence[str] = (), *, work_dir: str = "./outputs",
                   mode: str = "all", model_overrides: dict[str, Any] | None = None, driver: str = "auto",
                   extra_args: Sequence[str] = (), config: str | None = None) -> int:
    """Register, run VLMEvalKit's inference and evaluation for ``models`` x ``datasets`` (or a
    ``config`` file), and return 0 only when VLMEvalKit recorded no failure for any of them."""
    from tspo_eval.model_adapters import vlmevalkit_jobs
    from tspo_eval.model_adapters.vlmevalkit_status import (
        find_run_dirs,
        run_dir_failures,
    )

    if driver not in DRIVERS:
        raise InputError(f"driver {driver!r} is not one of {', '.join(DRIVERS)}")
    shortcuts = list(models)
    if config is not None:
        if models or datasets:
            raise InputError("give either --config or --model/--data (VLMEvalKit's run.py takes one or the other)")
        models, datasets, shortcuts = read_config(config)
    elif not models or not datasets:
        raise InputError("give --model and --data (or --config)")
    register(dict(model_overrides or {}), shortcuts)
    script = find_run_script() if driver in ("auto", "run") else None
    if driver == "run" and script is None:
        raise InputError("VLMEvalKit's run.py was not found next to the vlmeval package; use --driver api")
    if config is not None and script is None:
        raise InputError("--config runs through VLMEvalKit's run.py, which was not found next to the vlmeval package")
    work_root = Path(os.environ.get("MMEVAL_ROOT", work_dir)).resolve()  # run.py lets MMEVAL_ROOT win too
    started = datetime.datetime.now().astimezone() - datetime.timedelta(seconds=2)
    del vlmevalkit_jobs.FINISHED[:]
    with _jobs_wrapped(work_root):
        if script is not None:
            argv = _run_argv(script, models, datasets, config, work_dir, mode, extra_args)
            failures = _run_script(argv)
            if int(os.environ.get("RANK", "0")) == 0 and not failures:
                run_dirs = find_run_dirs(work_root, models, argv, started)
                failures = run_dir_failures(run_dirs, models, datasets)
        else:
            failures = _run_api(models, datasets, work_root, mode)
    failures += [f"{r.model} x {r.dataset}: {p}" for r in vlmevalkit_jobs.FINISHED for p in r.problems]
    for failure in failures:
        logger.error("VLMEvalKit run failed: {}", failure)
    if failures:
        logger.error("{} failure(s) in this VLMEvalKit run; exit status 1", len(failures))
        return 1
    return 0


@contextlib.contextmanager
def _jobs_wrapped(work_root: Path) -> Iterator[None]:
    """Put the job-scoped ``infer_data_job_video`` where ``run.py`` imports it from, for the run only."""
    from vlmeval import inference_video

    from tspo_eval.model_adapters.vlmevalkit_jobs import job_runner

    original = inference_video.infer_data_job_video
    inference_video.infer_data_job_video = job_runner(original, work_root)
    try:
        yield
    finally:
        inference_video.infer_data_job_video = original


def _run_argv(script: Path, models: Sequence[str], datasets: Sequence[str], config: str | None, work_dir: str,
              mode: str, extra_args: Sequence[str]) -> list[str]:
    selection = ["--config", str(Path(config).resolve())] if config else ["--model", *models, "--data", *datasets]
    return [str(script), *selection, "--work-dir", str(work_dir), "--mode", mode, *extra_args]


def _run_script(argv: list[str]) -> list[str]:
    """Execute ``run.py`` with ``argv``; failures it did not record itself (it stopped early)."""
    logger.info("VLMEvalKit run.py: {}", " ".join(argv[1:]))
    saved = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:  # argparse errors and explicit exits
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
        return [f"run.py exited with status {code}"] if code else []
    except Exception as exc:  # noqa: BLE001 - run.py lets errors outside its per-dataset try through
        logger.exception("VLMEvalKit's run.py stopped")
        return [f"run.py stopped: {type(exc).__name__}: {exc}"]
    finally:
        sys.argv = saved
    return []


def _run_api(models: Sequence[str], datasets: Sequence[str], work_root: Path, mode: str) -> list[str]:
    """VLMEvalKit's functions in run.py's order, failures collected per model x dataset."""
    from vlmeval import inference_video
    from vlmeval.dataset import build_dataset
    from vlmeval.smp import get_pred_file_path

    from tspo_eval.model_adapters.vlmevalkit_jobs import read_predictions
    from tspo_eval.model_adapters.vlmevalkit_summary import is_failed_answer

    failures = []
    for model_name in models:
        model: Any = model_name
        for dataset_name in datasets:
            try:
                dataset = build_dataset(dataset_name)
                if dataset is None:
                    raise InputError(f"VLMEvalKit could not build dataset {dataset_name!r}")
                out_dir = work_root / model_name
                out_dir.mkdir(parents=True, exist_ok=True)
                result_file = get_pred_file_path(str(out_dir), model_name, dataset_name, use_env_format=True)
                if mode != "eval":
                    model = inference_video.infer_data_job_video(model, work_dir=str(out_dir), model_name=model_name,
                                                                 dataset=dataset, result_file=result_file)
                predictions = read_predictions(result_file) or []
                failed = sum(is_failed_answer(p) for p in predictions)
                if failed:
                    failures.append(f"{model_name} x {dataset_name}: {failed}/{len(predictions)} answers failed")
                if mode != "infer":
                    scores = dataset.evaluate(result_file)
                    logger.info("{} x {}: {}", model_name, dataset_name, scores)
            except Exception as exc:  # noqa: BLE001 - as run.py: one failed combination does not stop the others
                logger.exception("{} x {} failed", model_name, dataset_name)
                failures.append(f"{model_name} x {dataset_name}: {type(exc).__name__}: {exc}")
    return failures
