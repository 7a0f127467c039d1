"""What tspo-eval uses from lmms-eval, checked against the installed lmms-eval by calling it.

Each check calls the real host objects (the entry-point registry, the ``lmms`` base class, a task
built by lmms-eval's own ``TaskManager``, one ``simple_evaluate`` run saved by its own
``EvaluationTracker``, the installed ``llava_vid`` source) and fails with a message naming the
host API that changed and what tspo-eval needs from it.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tspo_eval.cli.tasks_path import tasks_dir

LMMS_EVAL_VERSION = importlib.metadata.version("lmms_eval")
OUR_MODELS = {"qwen2_5_vl_tspo": "Qwen2_5_VL_TSPO", "llava_vid_tspo": "LlavaVidTSPO"}


def need(condition: object, changed: str, needs: str) -> None:
    """Fail with "lmms-eval <version> changed <changed>: tspo-eval needs <needs>" unless ``condition``."""
    if not condition:
        pytest.fail(f"lmms-eval {LMMS_EVAL_VERSION} changed {changed}: tspo-eval needs {needs}", pytrace=False)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> SimpleNamespace:
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    root = tmp_path_factory.mktemp("contract_synthetic")
    annotations, videos = build_synthetic_benchmark(root, n_videos=2, questions_per_video=2, seconds=8, fps=4.0)
    env = {"TSPO_EVAL_SYNTHETIC_ANNOTATIONS": str(annotations), "TSPO_EVAL_SYNTHETIC_VIDEOS": str(videos)}
    return SimpleNamespace(annotations=annotations, videos=videos, env=env,
                           qids=[r["question_id"] for r in json.loads(annotations.read_text())])


@pytest.fixture(scope="module")
def probe(synthetic, tmp_path_factory) -> SimpleNamespace:
    """One real lmms-eval evaluation (``simple_evaluate`` + ``EvaluationTracker``) of our model code path."""
    out = tmp_path_factory.mktemp("contract_probe")
    env = {**os.environ, **synthetic.env, "TSPO_EVAL_CACHE_DIR": str(out / "cache"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tspo_eval.testing.lmms_eval_probe", str(out / "run"), str(tasks_dir())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    log = proc.stdout + proc.stderr
    report_file = out / "run" / "probe.json"
    need(proc.returncode == 0 and report_file.is_file(), "simple_evaluate / EvaluationTracker (the probe run failed)",
         f"an evaluation of a TspoLmms model to run through\n{log[-3000:]}")
    return SimpleNamespace(report=json.loads(report_file.read_text()), out=out / "run", log=log)


# -- model registration ---------------------------------------------------------------------------
def test_entry_point_manifest_api():
    entry = [e for e in importlib.metadata.entry_points(group="lmms_eval.models") if e.name == "tspo_eval"]
    assert [e.value for e in entry] == ["tspo_eval.model_adapters.lmms_eval_manifest:model_manifests"], \
        "tspo-eval's own entry point is missing: reinstall the package (pip install -e .)"
    try:
        from lmms_eval.models.registry_v2 import ModelManifest, ModelRegistryV2
    except ImportError as exc:
        need(False, "lmms_eval.models.registry_v2 (ModelManifest, ModelRegistryV2)", f"them to register models ({exc})")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(ModelManifest)}
    need({"model_id", "simple_class_path", "aliases"} <= fields, f"ModelManifest's fields (now {sorted(fields)})",
         "model_id, simple_class_path, aliases")
    registry = ModelRegistryV2()
    params = inspect.signature(registry.load_entrypoint_manifests).parameters
    need(params.get("group") is not None and params["group"].default == "lmms_eval.models",
         "ModelRegistryV2.load_entrypoint_manifests(group=...)", "the plug-in group 'lmms_eval.models'")
    registry.load_entrypoint_manifests()
    resolved = registry.resolve("qwen_2_5_vl_tspo")
    need((resolved.model_id, resolved.model_type) == ("qwen2_5_vl_tspo", "simple"),
         f"ModelRegistryV2.resolve (alias -> {resolved})", "aliases of entry-point manifests resolved as simple models")
    from lmms_eval import models

    for name, cls_name in OUR_MODELS.items():
        need(name in models.list_available_models(include_aliases=True), "lmms_eval.models.list_available_models",
             f"entry-point models ({name}) registered at import")
        cls = models.get_model(name)
        need(cls.__name__ == cls_name, f"lmms_eval.models.get_model({name!r}) (returned {cls!r})", cls_name)


# -- the lmms base class --------------------------------------------------------------------------
def test_lmms_base_class_methods_we_override_and_call():
    from lmms_eval.api.model import lmms

    from tspo_eval.model_adapters.lmms_eval_common import TspoLmms

    abstract = set(getattr(lmms, "__abstractmethods__", ()))
    ours = {"loglikelihood", "generate_until", "generate_until_multi_round"}
    need(abstract <= ours, f"lmms' abstract methods (now {sorted(abstract)})", f"only {sorted(ours)} to implement")
    need(not TspoLmms.__abstractmethods__, "lmms' abstract methods", "TspoLmms to be instantiable")
    need(list(inspect.signature(lmms.generate_until).parameters) == ["self", "requests"],
         "lmms.generate_until(self, requests)", "one list of requests per call")

    bare = TspoLmms.__new__(TspoLmms)
    lmms.__init__(bare)
    need(bare.task_dict == {}, "lmms.__init__ (task_dict)", "self.task_dict: task -> split -> docs, filled by the evaluator")
    need((bare.rank, bare.world_size) == (0, 1), "lmms.rank / lmms.world_size", "defaults 0 and 1")
    bare._rank, bare._world_size = 2, 4
    need((bare.rank, bare.world_size) == (2, 4), "lmms.rank / lmms.world_size (no longer read _rank/_world_size)",
         "them to return the _rank/_world_size our models set")
    hook = getattr(bare, "cache_hook", None)
    need(hook is not None and list(inspect.signature(hook.add_partial).parameters) == ["attr", "req", "res"],
         "lmms.cache_hook.add_partial(attr, req, res)", "it to record each answer for lmms-eval's response cache")

    class Capture(TspoLmms):
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    made = Capture.create_from_arg_string("pretrained=/ckpt,num_frames=8,frame_selection=uniform",
                                          {"batch_size": 1, "max_batch_size": None, "device": None})
    need(set(made.kwargs) == {"pretrained", "num_frames", "frame_selection", "batch_size"}
         and str(made.kwargs["num_frames"]) == "8" and made.kwargs["pretrained"] == "/ckpt",
         f"lmms.create_from_arg_string (gave {made.kwargs})", "model_args as constructor keyword arguments")


# -- tasks: requests and scoring ----------------------------------------------------------------
@pytest.fixture(scope="module")
def host_task(synthetic):
    """``tspo_synthetic`` built by lmms-eval's own TaskManager from our YAML."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    saved = {k: os.environ.get(k) for k in synthetic.env}
    os.environ.update(synthetic.env)
    try:
        task = get_task_dict(["tspo_synthetic"], TaskManager(include_path=str(tasks_dir())))["tspo_synthetic"]
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return task


def test_generate_until_request_layout(host_task, synthetic):
    from lmms_eval.api.instance import Instance

    from tspo_eval.tasks.utils import TspoBenchmarkTask

    need(type(host_task).__name__ == TspoBenchmarkTask.__name__, "the YAML 'class: !function' task loading",
         f"our TspoBenchmarkTask (got {type(host_task).__name__})")
    host_task.build_all_requests(limit=None, rank=0, world_size=1)
    request = host_task.instances[0]
    need(isinstance(request, Instance) and request.request_type == "generate_until", "the request objects",
         "lmms_eval.api.instance.Instance with request_type generate_until")
    args = request.args
    need(len(args) >= 6, f"generate_until's request.args (now {len(args)} items)",
         "(context, gen_kwargs, doc_to_visual, doc_id, task, split)")
    context, gen_kwargs, doc_to_visual, doc_id, task, split = args[:6]
    need(isinstance(context, str) and isinstance(gen_kwargs, dict) and callable(doc_to_visual),
         "generate_until's request.args[0:3]", "(context str, gen_kwargs dict, doc_to_visual callable)")
    need((doc_id, task, split) == (request.doc_id, "tspo_synthetic", host_task.config.test_split),
         f"generate_until's request.args[3:6] (now {args[3:6]})", "(doc_id, task name, split)")
    doc = host_task.test_docs()[doc_id]
    need(doc["question_id"] == synthetic.qids[doc_id] and doc_to_visual(doc) == [doc["video_path"]],
         "the doc_id -> doc mapping", "docs[doc_id] to be the request's document")


def test_process_results_signature_and_shards(host_task):
    from lmms_eval.api.task import ConfigurableTask

    params = list(inspect.signature(ConfigurableTask.process_results).parameters)
    need(params[:3] == ["self", "doc", "results"], f"ConfigurableTask.process_results{params}",
         "process_results(self, doc, results, ...) to override")
    # each rank scores exactly the documents it answered: the model's in-process record is there
    for rank in (0, 1):
        host_task.build_all_requests(limit=None, rank=rank, world_size=2)
        answered = sorted({r.doc_id for r in host_task.instances})
        scored = [doc_id for doc_id, _ in host_task.doc_iterator(rank=rank, world_size=2)]
        need(answered == scored and answered, f"the rank sharding of requests vs. scoring (rank {rank}: "
             f"answers {answered}, scores {scored})", "each rank to score the documents its own process answered")


def test_real_evaluation_hands_our_model_the_documented_requests(probe, synthetic):
    requests = probe.report["requests"]
    need(len(requests) == len(synthetic.qids), f"the requests of one evaluation ({len(requests)})",
         f"one generate_until request per document ({len(synthetic.qids)})")
    for seen in requests:
        need(seen["class"] == "lmms_eval.api.instance.Instance" and seen["request_type"] == "generate_until",
             f"the request class ({seen['class']})", "Instance objects")
        need(seen["arg_types"][:6] == ["str", "dict", "callable", "int", "str", "str"],
             f"generate_until's request.args types ({seen['arg_types']})",
             "(context, gen_kwargs, doc_to_visual, doc_id, task, split)")
        need("task_dict_error" not in seen and seen["doc_question_id"] in synthetic.qids,
             f"lmms.task_dict ({seen.get('task_dict_error')})", "task_dict[task][split][doc_id] -> the doc")
        need(seen["visual"] and Path(seen["visual"][0]).parent == synthetic.videos,
             "doc_to_visual", "the task's doc_to_visual(doc) -> [video path]")


def test_samples_file_carries_each_answers_frames(probe, synthetic):
    from tspo_eval.frame_records import SAMPLES_NAME_RE, frames_from_samples
    from tspo_eval.leaderboard.lmms_runs import read_output_dir

    samples_files = [Path(p) for p in probe.report["samples_files"]]
    need(len(samples_files) == 1 and SAMPLES_NAME_RE.match(samples_files[0].name),
         f"EvaluationTracker.save_results_samples' file name ({[p.name for p in samples_files]})",
         "<date>_samples_<task>.jsonl")
    results_file = samples_files[0].with_name(SAMPLES_NAME_RE.match(samples_files[0].name).group("date") + "_results.json")
    need(str(results_file) in probe.report["results_files"], "EvaluationTracker.save_results_aggregated's file name",
         "<date>_results.json next to the samples, with the same date")
    lines = [json.loads(line) for line in samples_files[0].read_text().splitlines()]
    need(len(lines) == len(synthetic.qids), "the samples file (one line per document)", "one line per answered document")
    for sample in lines:
        need({"doc_id", "filtered_resps", "tspo_accuracy"} <= set(sample),
             f"the samples-file fields (now {sorted(sample)})", "doc_id, filtered_resps and the metric dict per line")
        metric = sample["tspo_accuracy"]
        need(isinstance(metric, dict) and isinstance(metric.get("frames"), dict),
             "where process_results' per-sample dicts go (the frames are missing)",
             "the metric dict of process_results, run in the answering process, written whole into the sample")
    records = frames_from_samples(samples_files[0])
    assert set(records) == set(synthetic.qids)
    for record in records.values():  # exactly the frames the model decoded for its answer
        assert record.frame_indices == probe.report["frames"][record.video]
        assert record.extra == {"frame_source": "uniform"} and record.strategy == "uniform"
    (run,) = read_output_dir(probe.out)
    assert run.details["frames_index"] == str(samples_files[0]) and run.details["frames_in_samples"] == len(records)


def test_llava_vid_load_video_hook():
    """``llava_vid_tspo`` (backend=llava) replaces lmms-eval's ``LlavaVid.load_video``; the installed
    source must still define it as we call it and call it for decord-decoded videos."""
    spec = importlib.util.find_spec("lmms_eval.models.simple.llava_vid")
    need(spec is not None and spec.origin, "lmms_eval.models.simple.llava_vid", "the module to exist")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LlavaVid"), None)
    need(cls is not None, "lmms_eval.models.simple.llava_vid.LlavaVid", "the class")
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    load_video = methods.get("load_video")
    need(load_video is not None and [a.arg for a in load_video.args.args] ==
         ["self", "video_path", "max_frames_num", "fps", "force_sample"],
         "LlavaVid.load_video's signature", "load_video(self, video_path, max_frames_num, fps, force_sample)")
    generate = methods.get("generate_until")
    decord_branch_calls = [
        call for node in ast.walk(generate) if isinstance(node, ast.If) and "video_decode_backend" in ast.unparse(node.test)
        and "decord" in ast.unparse(node.test)
        for stmt in node.body for call in ast.walk(stmt)
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "self.load_video"
    ] if generate is not None else []
    need(decord_branch_calls, "LlavaVid.generate_until (no self.load_video call under video_decode_backend == 'decord')",
         "it to fetch every video's frames through self.load_video")
