"""``tspo-eval vlmevalkit --model NAME --data DATASET ...`` (or ``--config cfg.json``): VLMEvalKit
with the TSPO models and datasets.

Registers (in-process) the models ``TSPO_FrameIndex``, ``Qwen2.5-VL-7B-Instruct-TSPO``,
``LLaVA-Video-7B-Qwen2-TSPO``, ``LLaVA-OneVision-7B-TSPO`` (and their classes for config files)
and the datasets ``LVBench*`` / ``TSPO_Synthetic*``, then runs VLMEvalKit's own inference and
evaluation. Arguments after ``--`` go to VLMEvalKit's ``run.py`` unchanged (e.g. ``-- --reuse``).
Exit status 1 when VLMEvalKit recorded a failure for any model x dataset (each is named).
"""
from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", nargs="+", default=None, help="VLMEvalKit model names (ours or built-in)")
    parser.add_argument("--data", nargs="+", default=None, help="VLMEvalKit dataset names (ours or built-in)")
    parser.add_argument("--config", default=None,
                        help="VLMEvalKit config JSON ({\"model\": {...}, \"data\": {...}}) instead of --model/--data")
    parser.add_argument("--model-args", default=None,
                        help="k=v,... for the TSPO models, e.g. pretrained=/ckpt,tspo_path=/agent,num_frames=64,"
                             "frame_selection=index,frame_index=/idx.jsonl")
    parser.add_argument("--work-dir", default="./outputs", help="VLMEvalKit output folder")
    parser.add_argument("--mode", default="all", choices=("all", "infer", "eval"))
    parser.add_argument("--driver", default="auto", choices=("auto", "run", "api"),
                        help="run: VLMEvalKit's run.py; api: its Python functions (installs without run.py)")
    for bench, flag in (("lvbench", "lvbench"), ("synthetic", "synthetic")):
        parser.add_argument(f"--{flag}-annotations", default=None, help=f"{bench} annotation file")
        parser.add_argument(f"--{flag}-videos", default=None, help=f"{bench} video root")
    parser.add_argument("--list", action="store_true", help="list the TSPO models and datasets and exit")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments for VLMEvalKit's run.py")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tspo_eval.errors import InputError
    from tspo_eval.model_adapters.vlmevalkit_lvbench import VARIANTS
    from tspo_eval.model_adapters.vlmevalkit_models import MODEL_SPECS, parse_model_args

    if args.list:
        print("models:   " + ", ".join(MODEL_SPECS))
        print("datasets: " + ", ".join(VARIANTS))
        return 0
    extra = [a for a in (args.extra or []) if a != "--"]
    config = args.config
    if "--config" in extra:  # also accepted after --, where run.py's own options go
        at = extra.index("--config")
        if at + 1 >= len(extra) or config is not None:
            raise InputError("--config takes one file (give it once)")
        config = extra[at + 1]
        del extra[at:at + 2]
    if config is None and (not args.model or not args.data):
        raise InputError("give --model and --data, or --config FILE (or --list)")
    from tspo_eval.model_adapters.vlmevalkit_launcher import (
        run_vlmevalkit,
        set_dataset_locations,
    )

    set_dataset_locations({"lvbench": (args.lvbench_annotations, args.lvbench_videos),
                           "synthetic": (args.synthetic_annotations, args.synthetic_videos)})
    return run_vlmevalkit(args.model or (), args.data or (), work_dir=args.work_dir, mode=args.mode,
                          model_overrides=parse_model_args(args.model_args), driver=args.driver, extra_args=extra,
                          config=config)
