"""``tspo-eval train BENCH ANNOTATIONS --videos ROOT --answerer SPEC --out DIR``: train the temporal agent."""
from __future__ import annotations

import argparse

from tspo_eval.selector_options import add_selector_arguments


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` arguments to ``parser`` (defaults shown in --help)."""
    parser.add_argument("benchmark", metavar="BENCH",
                        help="longvideobench, mlvu, videomme, lvbench, synthetic or tspo10k (TSPO's training JSONL)")
    parser.add_argument("annotations", metavar="ANNOTATIONS", help="annotation file of BENCH")
    parser.add_argument("--videos", required=True, metavar="ROOT", help="video folder of BENCH")
    parser.add_argument("--answerer", required=True, metavar="SPEC",
                        help="frozen answering model: synthetic-reader, or NAME:PATH[,key=value...]")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (checkpoint, metrics, state)")
    parser.add_argument("--init", default="hzf666/TSPO-0.4B", help="TSPO-layout checkpoint to start from, or 'random'")
    parser.add_argument("--clip", default=None, metavar="PATH", help="CLIP folder (needed with --init random)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, default=None, help="optimizer steps (default: one epoch)")
    length.add_argument("--epochs", type=float, default=None, help="passes over the training prompts")
    parser.add_argument("--prompts-per-step", type=int, default=8, metavar="B", help="global batch of prompts per step")
    parser.add_argument("--group-size", type=int, default=8, metavar="G", help="frame sets sampled per prompt")
    parser.add_argument("--num-frames", type=int, default=8, metavar="K", help="frames per sampled set")
    parser.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate (linear decay to 0)")
    parser.add_argument("--tau0", type=float, default=0.025, help="initial temperature (anneals to 0.01)")
    parser.add_argument("--logprob", default="first-draw", choices=("first-draw", "plackett-luce"))
    parser.add_argument("--off-policy", default="none", choices=("none", "downscale", "anchor", "shaping"),
                        help="TempSamp-R1 oracle frame set and how it is mixed in")
    parser.add_argument("--needles", action="store_true", help="train 'specific' items on needle composites")
    parser.add_argument("--eval", default=None, metavar="BENCH=ANNOTATIONS:VIDEOS",
                        help="held-out set for the span hit rate every --save-every steps (best kept in DIR/best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100, metavar="N", help="checkpoint (and eval) every N steps")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    add_selector_arguments(parser, only={"fps", "decoder", "device", "dtype", "cache-dir", "workers"})
    parser.add_argument("--frame-store", action=argparse.BooleanOptionalAction, default=True,
                        help="decode every candidate frame of a video once into <cache folder>/decoded_frames "
                             "(T x H x W x 3 bytes per video) instead of decoding the sampled frames per prompt (default: on)")
    parser.add_argument("--frame-pixels", type=int, default=602112, metavar="N",
                        help="pixels per stored frame at most (area downscale, aspect kept; 602112 = 768*28*28, "
                             "Qwen2.5-VL's per-frame video budget; 0 = native size)")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace):
    """The :class:`~tspo_eval.training.TrainOptions` of parsed arguments."""
    from tspo_eval.selector_options import SelectorOptions
    from tspo_eval.training import TrainOptions

    selector = SelectorOptions(agent=args.init, clip_model=args.clip, decoder=args.decoder, fps=args.fps,
                               device=args.device, dtype=args.dtype, cache_dir=args.cache_dir, workers=args.workers)
    return TrainOptions(
        benchmark=args.benchmark, annotations=args.annotations, videos=args.videos, answerer=args.answerer,
        out=args.out, selector=selector, steps=args.steps, epochs=args.epochs,
        prompts_per_step=args.prompts_per_step, group_size=args.group_size, num_frames=args.num_frames, lr=args.lr,
        tau0=args.tau0, logprob=args.logprob, off_policy=args.off_policy, needles=args.needles, eval=args.eval,
        seed=args.seed, save_every=args.save_every, resume=args.resume, frame_store=args.frame_store,
        frame_pixels=args.frame_pixels,
    )


def run(args: argparse.Namespace) -> int:
    """Validate (before loading any model), train, print where the checkpoint is."""
    from tspo_eval.answering.spec import parse_answerer_spec
    from tspo_eval.training.trainer import train

    options = options_from_args(args).validated()
    parse_answerer_spec(options.answerer)
    result = train(options)
    last = result.metrics[-1] if result.metrics else {}
    print(f"trained {result.steps} steps -> {result.out}"
          + (f" (last reward {last['reward_mean']:.3f}, R_A {last['r_a']:.3f})" if last else "")
          + (f"; best held-out hit rate {result.best['hit_rate']:.3f} at step {result.best['step']} in {result.out}/best"
             if result.best else "")
          + (f"; {result.failures} failures in {result.out}/failures.jsonl" if result.failures else ""))
    return 0
