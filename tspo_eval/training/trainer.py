"""The training loop of ``tspo-eval train``: TSPO policy optimisation of the selector head.

Per optimizer step, ``prompts_per_step`` prompts (split over ranks); per prompt one rollout
(:func:`tspo_eval.training.rollout.run_prompt`).  Each prompt's gradient is added into a float64
buffer in the order of the global prompt index, the buffers are summed over ranks, divided by the
number of prompts done, clipped to norm 1.0 and applied by AdamW (lr linearly decayed to 0).
Every random draw of a prompt comes from a generator seeded by (seed, step, prompt index), so the
run does not depend on how prompts are split over ranks, and a resumed run repeats exactly what
an uninterrupted one does.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from loguru import logger
from torch import Tensor

from tspo_eval.answering import Answerer
from tspo_eval.answering.spec import build_answerer
from tspo_eval.distributed import DistContext, ProcessGroup
from tspo_eval.errors import InputError, TspoEvalError, VideoError
from tspo_eval.training import checkpointing as ckpt
from tspo_eval.training.data import (
    CandidateStore,
    TrainingItem,
    load_training_items,
    parse_eval_spec,
)
from tspo_eval.training.evaluation import span_hit_rate, uniform_hit_rate
from tspo_eval.training.frame_store import DecodedFrameStore
from tspo_eval.training.metrics import (
    SUM_FIELDS,
    JsonlLog,
    plot_curves,
    read_jsonl,
    step_record,
)
from tspo_eval.training.needles import N_DISTRACTORS, compose_needle
from tspo_eval.training.options import TrainOptions
from tspo_eval.training.rollout import (
    RolloutConfig,
    empty_counters,
    prompt_seed,
    run_prompt,
)
from tspo_eval.training.schedules import LinearDecay, tau_at

GRAD_CLIP = 1.0
#: parameters of the checkpoint that the forward pass never uses (kept, not optimised)
UNUSED_PARAMETERS = ("temporal.ffn_o.weight", "temporal.ffn_o.bias")


class TrainingError(TspoEvalError):
    """Training cannot go on (a non-finite loss or gradient); the last good checkpoint is kept."""


@dataclass
class TrainResult:
    out: Path
    steps: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    failures: int = 0


class EpochOrder:
    """Global prompt index -> item: a fresh seeded permutation of the items per epoch."""

    def __init__(self, n_items: int, seed: int) -> None:
        self.n, self.seed = n_items, seed
        self._perms: dict[int, list[int]] = {}

    def __call__(self, index: int) -> int:
        epoch, offset = divmod(index, self.n)
        if epoch not in self._perms:
            gen = torch.Generator().manual_seed(prompt_seed(self.seed, epoch, 0, stream=1))
            self._perms = {epoch: torch.randperm(self.n, generator=gen).tolist()}
        return self._perms[epoch][offset]


def _load_agent(opts: TrainOptions, device: str | None):
    """(agent, CLIP folder) for ``--init`` (``random``: a fresh head seeded by ``--seed`` on ``--clip``)."""
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.agent.checkpoint import resolve_checkpoint
    from tspo_eval.agent.clip_encoder import HFClipEncoder
    from tspo_eval.agent.devices import resolve_device, resolve_dtype
    from tspo_eval.agent.selector_head import SelectorHead

    if opts.init == "random":
        dev = resolve_device(device)
        clip_dir = resolve_checkpoint(opts.clip)
        clip = HFClipEncoder(clip_dir, dev, resolve_dtype(opts.selector.dtype, dev))
        torch.manual_seed(opts.seed)
        agent = TemporalAgent(clip, SelectorHead().to(dev), source="random")
    else:
        agent = TemporalAgent.from_pretrained(opts.init, device=device, dtype=opts.selector.dtype, clip_path=opts.clip)
        clip_dir = agent.clip.path
    agent.head.requires_grad_(True)
    return agent, Path(clip_dir)


class Trainer:
    """One training run (see :func:`train`)."""

    def __init__(self, opts: TrainOptions, ctx: DistContext, group: ProcessGroup, answerer: Answerer) -> None:
        self.opts, self.ctx, self.group, self.answerer = opts, ctx, group, answerer
        self.out = Path(opts.out)
        self.failures = JsonlLog(self.out / "failures.jsonl")
        self.metrics_log = JsonlLog(self.out / "metrics.jsonl")
        self._texts: dict[str, Tensor] = {}

    # -- set-up ----------------------------------------------------------------------------------
    def setup(self) -> None:
        from tspo_eval.frame_index_cache import FeatureCache
        from tspo_eval.selection import FrameSelector

        opts, ctx = self.opts, self.ctx
        items = load_training_items(opts.benchmark, opts.annotations, opts.videos)
        self.eval_items: list[TrainingItem] = []
        if opts.eval:
            bench, ann, videos = parse_eval_spec(opts.eval)
            self.eval_items = load_training_items(bench, ann, videos)
        self.agent, self.clip_dir = _load_agent(opts, opts.selector.device or (ctx.default_device() if ctx.is_distributed else None))
        self.head = self.agent.head
        cache = FeatureCache(opts.selector.cache_dir)
        selector = FrameSelector(self.agent, cache=cache, decoder=opts.selector.decoder, fps=opts.selector.fps,
                                 workers=opts.selector.workers or 1)
        self.store = CandidateStore(selector)
        self.frame_store = self._frame_store(cache)
        videos = sorted({i.video for i in items} | {i.video for i in self.eval_items})
        if ctx.is_distributed:  # each rank encodes its share into the shared cache, then all read it
            self.store.prepare(ctx.shard(videos), progress=bool(opts.progress))
            self.group.barrier()
        broken = self.store.prepare(videos, progress=bool(opts.progress) and ctx.is_main)
        rows = [{"question_id": i.question_id, "video": i.video, "reason": broken[i.video], "step": None}
                for i in items if i.video in broken]
        usable = [i for i in items if i.video not in broken]
        needle_items = self.opts.needles
        fit = []
        for item in usable:
            count = len(self.store.get(item.video).frames)
            if count < opts.num_frames and not (needle_items and item.kind == "specific"):
                rows.append({"question_id": item.question_id, "video": item.video, "step": None,
                             "reason": f"only {count} candidates, fewer than --num-frames {opts.num_frames}"})
            else:
                fit.append(item)
        if not usable:
            raise InputError(f"empty training set: none of the {len(items)} questions has a readable video "
                             f"(see {self.failures.path})" if items else "empty training set")
        if not fit:
            largest = max(len(self.store.get(i.video).frames) for i in usable)
            raise InputError(f"--num-frames {opts.num_frames} is above the candidate count of every training video "
                             f"(largest: {largest} candidates at {opts.selector.fps:g} fps)")
        self.items = fit
        self.eval_items = [i for i in self.eval_items if i.video not in broken]
        self.pre_failures = rows
        self.videos = sorted({i.video for i in self.items})
        if needle_items and len(self.videos) < 2:
            raise InputError("--needles needs at least two training videos (the others are the distractors)")
        n = len(self.items)
        self.max_steps = opts.steps or max(1, math.ceil((opts.epochs or 1.0) * n / opts.prompts_per_step))
        self.order = EpochOrder(n, opts.seed)
        self.config = RolloutConfig(opts.group_size, opts.num_frames, opts.logprob, opts.off_policy, opts.selector.decoder,
                                    frame_store=self.frame_store)
        named = dict(self.head.named_parameters())
        self.params = [p for name, p in named.items() if name not in UNUSED_PARAMETERS]
        self.optimizer = torch.optim.AdamW(self.params, lr=opts.lr, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, LinearDecay(self.max_steps))
        logger.info("training on {} prompts ({} skipped), {} steps of {} prompts, G={} K={}", n, len(rows),
                    self.max_steps, opts.prompts_per_step, opts.group_size, opts.num_frames)

    def _frame_store(self, cache: Any) -> DecodedFrameStore | None:
        """The run's decoded-frame store in the feature cache's folder (None with ``--no-frame-store``)."""
        opts = self.opts
        if not opts.frame_store:
            return None
        store = DecodedFrameStore.for_cache(cache, decoder=opts.selector.decoder, fps=opts.selector.fps,
                                            max_pixels=opts.frame_pixels, grid_of=lambda video: self.store.get(video).frames)
        if self.ctx.is_main:
            info = store.info()
            logger.info("decoded-frame store: {} (frames of at most {} pixels, 0: native size; {} files, {:.2f} GiB "
                        "there now; a video takes T x H x W x 3 bytes)", info["root"], opts.frame_pixels,
                        info["files"], info["bytes"] / 2**30)
        return store

    def text_features(self, question: str) -> Tensor:
        if question not in self._texts:
            self._texts[question] = self.agent.encode_text(question).clone()  # out of inference mode
        return self._texts[question]

    def candidates_for(self, item: TrainingItem, generator: torch.Generator):
        """(candidates, spans) of a prompt: the video's own, or a needle composite (``--needles``)."""
        cands = self.store.get(item.video)
        if not (self.opts.needles and item.kind == "specific"):
            return cands, list(item.time_spans)
        others = [v for v in self.videos if v != item.video]
        picks = torch.randint(len(others), (N_DISTRACTORS,), generator=generator).tolist()
        pool = [self.store.get(others[i]) for i in dict.fromkeys(picks)]
        return compose_needle(cands, item.time_spans, pool, generator, fps=self.opts.selector.fps)

    # -- state -----------------------------------------------------------------------------------
    def resume_from(self, state: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_states(state["rng"])
        return int(state["step"]), state.get("best")

    def save(self, step: int, best: dict[str, Any] | None) -> dict[str, Any] | None:
        """Checkpoints of step ``step`` (rank 0): DIR/step-N, DIR, evaluation and DIR/best, trainer state, curves."""
        out = self.out
        ckpt.write_agent_checkpoint(out, self.head, self.clip_dir)
        ckpt.write_agent_checkpoint(out / f"step-{step}", self.head, self.clip_dir, clip_shard=out / ckpt.CLIP_SHARD)
        if self.eval_items:
            best = self.evaluate(step, best)
        state = {"step": step, "head": {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()},
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "tau": tau_at(step, self.max_steps, self.opts.tau0), "rng": ckpt.rng_states(), "best": best,
                 "max_steps": self.max_steps}
        ckpt.save_trainer_state(out, state, self.opts.settings())
        try:
            plot_curves(read_jsonl(self.metrics_log.path), out / "curves.png", title=f"tspo-eval train: {out.name}")
        except Exception as exc:  # noqa: BLE001 - a plot must never stop training
            logger.warning("could not draw curves.png: {}", exc)
        return best

    def evaluate(self, step: int, best: dict[str, Any] | None) -> dict[str, Any] | None:
        """Span hit rate on the held-out set; DIR/best holds the best checkpoint so far."""
        found = span_hit_rate(self.head, self.eval_items, self.store, self.text_features, self.opts.num_frames)
        record = {"step": step, "eval_hit_rate": found["hit_rate"], "eval_frame_fraction": found["frame_fraction"],
                  "eval_n": found["n"]}
        if step == 0:
            base = uniform_hit_rate(self.eval_items, self.store, self.opts.num_frames)
            record.update(uniform_hit_rate=base["hit_rate"], uniform_frame_fraction=base["frame_fraction"])
        self.metrics_log.append(record)
        logger.info("step {}: held-out span hit rate {:.3f} (frame fraction {:.3f}, n={})", step,
                    found["hit_rate"], found["frame_fraction"], found["n"])
        score = (found["hit_rate"], found["frame_fraction"])
        if best is None or score > (best["hit_rate"], best["frame_fraction"]):
            best = {"step": step, **found}
            ckpt.write_agent_checkpoint(self.out / "best", self.head, self.clip_dir, clip_shard=self.out / ckpt.CLIP_SHARD)
        return best

    # -- the loop --------------------------------------------------------------------------------
    def _reduce(self, vector: Tensor) -> Tensor:
        if self.ctx.is_distributed:
            import torch.distributed as dist

            vector = vector.cpu()
            dist.all_reduce(vector, op=dist.ReduceOp.SUM, group=getattr(self.group, "_group", None))
        return vector

    def run_step(self, step: int) -> dict[str, Any]:
        """One optimizer step (``step`` counts from 0); returns its metrics record."""
        opts, started = self.opts, time.perf_counter()
        tau = tau_at(step, self.max_steps, opts.tau0)
        lr = float(self.optimizer.param_groups[0]["lr"])
        sums = empty_counters()
        acc = [torch.zeros(p.shape, dtype=torch.float64, device=p.device) for p in self.params]
        for prompt in range(self.ctx.rank, opts.prompts_per_step, self.ctx.world_size):
            item = self.items[self.order(step * opts.prompts_per_step + prompt)]
            generator = torch.Generator().manual_seed(prompt_seed(opts.seed, step, prompt))
            try:
                cands, spans = self.candidates_for(item, generator)
                counters = run_prompt(self.head, item, cands, spans, self.text_features(item.question), tau,
                                      self.config, self.answerer, generator)
            except VideoError as exc:
                counters = {**empty_counters(), "failed": 1.0}
                self.failures.append({"question_id": item.question_id, "video": item.video, "reason": str(exc),
                                      "step": step + 1})
                logger.warning("step {}: skipped {}: {}", step + 1, item.question_id, exc)
            for a, p in zip(acc, self.params):
                if p.grad is not None:
                    a += p.grad.double()
                    p.grad = None
            for key in SUM_FIELDS:
                sums[key] += counters[key]
        flat = self._reduce(torch.cat([a.reshape(-1).cpu() for a in acc]))
        totals = self._reduce(torch.tensor([sums[k] for k in SUM_FIELDS], dtype=torch.float64))
        sums = dict(zip(SUM_FIELDS, totals.tolist()))
        done = max(sums["prompts"], 1.0)
        flat = flat / done
        if not (torch.isfinite(flat).all() and math.isfinite(sums["loss"])):
            raise TrainingError(f"non-finite loss or gradient at step {step + 1}: training stopped; the last good "
                                f"checkpoint is {self.out} (step {self.last_saved})")
        offset = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[offset: offset + n].reshape(p.shape).to(device=p.device, dtype=p.dtype)
            offset += n
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_record(step + 1, sums, tau, lr, grad_norm, time.perf_counter() - started)

    def run(self, resume_state: dict[str, Any] | None, on_step: Callable[[int], None] | None) -> TrainResult:
        from tqdm.auto import tqdm

        main = self.ctx.is_main
        start, best = self.resume_from(resume_state) if resume_state else (0, None)
        self.last_saved = start
        if main:
            if resume_state:
                self.metrics_log.keep(lambda r: r.get("step", 0) <= start)
                self.failures.keep(lambda r: r.get("step") is not None and r["step"] <= start)
            else:
                self.metrics_log.keep(lambda r: False)
                self.failures.keep(lambda r: False)
                ckpt.write_agent_checkpoint(self.out, self.head, self.clip_dir, refresh_clip=True)
            self.failures.extend(self.pre_failures)
            if self.eval_items and not resume_state:
                best = self.evaluate(0, best)
        self.group.barrier()
        bar = tqdm(total=self.max_steps, initial=start, unit="step", desc="train", disable=None if (
            main and self.opts.progress is not False) else True)
        records = []
        try:
            for step in range(start, self.max_steps):
                record = self.run_step(step)
                records.append(record)
                done = step + 1
                if main:
                    self.metrics_log.append(record)
                    bar.update(1)
                    bar.set_postfix(reward=f"{record['reward_mean']:.3f}", r_a=f"{record['r_a']:.2f}")
                if done % self.opts.save_every == 0 or done == self.max_steps:
                    if main:
                        best = self.save(done, best)
                    self.last_saved = done
                    self.group.barrier()
                if on_step is not None:
                    on_step(done)
        finally:
            bar.close()
        if main and self.frame_store is not None:
            info = self.frame_store.info()
            logger.info("decoded-frame store {} holds {} files, {:.2f} GiB", info["root"], info["files"],
                        info["bytes"] / 2**30)
        failures = len(self.pre_failures) + int(sum(r["failed"] for r in records))
        return TrainResult(self.out, self.max_steps, records, best, failures)


def train(options: TrainOptions, *, answerer: Answerer | None = None,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Run ``tspo-eval train`` (this rank's part under torchrun / accelerate launch).

    Args:
        answerer: overrides ``options.answerer`` (tests, notebooks).
        on_step: called with the number of steps done after each step (and its checkpoint).
    Raises:
        InputError: bad options or data (one line for the CLI); TrainingError: non-finite loss/gradient.
    """
    opts = options.validated()
    answerer = answerer or build_answerer(opts.answerer)
    out = Path(opts.out)
    resume_state = None
    if opts.resume:
        if not ckpt.has_trainer_state(out):
            raise InputError(f"--resume: {out} holds no trainer state ({ckpt.STATE_DIR}/{ckpt.STATE_FILE})")
        ckpt.check_settings(out, opts.settings())
        resume_state = ckpt.load_trainer_state(out)
    elif ckpt.has_trainer_state(out):
        raise InputError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    random.seed(opts.seed)
    np.random.seed(opts.seed % (2 ** 32))
    torch.manual_seed(opts.seed)
    ctx = DistContext.from_env()
    with ProcessGroup(ctx) as group:
        trainer = Trainer(opts, ctx, group, answerer)
        trainer.setup()
        if resume_state is not None and int(resume_state.get("max_steps", trainer.max_steps)) != trainer.max_steps:
            raise InputError(f"--resume into {out}: it was planned for {resume_state['max_steps']} steps, "
                             f"these settings give {trainer.max_steps}")
        return trainer.run(resume_state, on_step)
