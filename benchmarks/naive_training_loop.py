"""The naive, reference-style training loop that ``bench_train.py`` compares ``tspo_eval.training.train`` with.

Per prompt, what the reference TSPO trainer does: decode every 1 fps candidate and CLIP-encode them
(no cache), then per sampled set one decode and one batch-1 answer, then the head's forward /
backward; same prompt order, seeds, optimizer and schedule as ``train()``, so both loops sample the
same sets and end with the same weights.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_selection_overhead import _sync


def clip_dtype(args: argparse.Namespace) -> str | None:
    """The CLIP dtype of both loops: bf16 on a GPU, the checkpoint's own on the CPU."""
    return "bf16" if args.device.startswith("cuda") else None


class RecordingAnswerer:
    """Passes requests on to ``inner`` and keeps ``(item, frame times, answer)`` of each, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, getattr(inner, "name", "answerer")
        self.seen: list[tuple[str, tuple[float, ...], str]] = []

    def answer(self, requests: list, batch_size: int = 1) -> list[str]:
        texts = self.inner.answer(requests, batch_size=batch_size)
        self.seen += [(r.item, tuple(round(float(t), 6) for t in r.timestamps), a) for r, a in zip(requests, texts)]
        return texts


def naive_prompt(agent: Any, item: Any, tau: float, generator: Any, args: argparse.Namespace,
                 answerer: Any) -> dict[str, float]:
    """One prompt the reference way; back-propagates into ``agent.head``; returns its seconds split."""
    import torch

    from tspo_eval.answering import AnswerRequest
    from tspo_eval.training.advantages import mixed_advantages
    from tspo_eval.training.policy import (
        gumbel_top_k,
        logprob_terms,
        policy_loss,
        trainable_scores,
    )
    from tspo_eval.training.rewards import answer_reward, inside_spans, total_reward
    from tspo_eval.training.rollout import ANSWER_SETTINGS
    from tspo_eval.video import candidate_grid, decode_frames, open_video

    clock, split = time.perf_counter, {"decode_clip": 0.0, "decode_sets": 0.0, "answerer": 0.0, "head": 0.0}
    t = clock()
    with open_video(item.video, args.decoder) as reader:  # every 1 fps candidate into one array [T, H, W, 3]
        meta = reader.metadata
        grid = candidate_grid(meta, 1.0)
        pixels = reader.get_frames(grid.tolist())
    features = agent.encode_frames(pixels).clone()  # [T, 768], no cache
    text = agent.encode_text(item.question).clone()  # [1, 768]
    _sync(args.device)
    split["decode_clip"] = clock() - t
    t = clock()
    times = grid.astype(np.float64) / float(meta.avg_fps)
    logits = trainable_scores(agent.head, features, text) / tau  # [T] with grad
    sets = gumbel_top_k(logits.detach(), args.num_frames, args.group_size, generator)
    split["head"] += clock() - t
    texts = []
    for row in sets.positions.numpy():  # G separate decodes and G batch-1 answers
        t = clock()
        frames = decode_frames(item.video, grid[row].tolist(), decoder=args.decoder)
        split["decode_sets"] += clock() - t
        request = AnswerRequest.multiple_choice(frames, times[row].tolist(), item.duration or meta.duration,
                                                item.question, item.options, ANSWER_SETTINGS, item=item.question_id,
                                                prompt=item.prompt)
        t = clock()
        texts += answerer.answer([request], batch_size=1)
        split["answerer"] += clock() - t
    t = clock()
    totals = [total_reward(answer_reward(a, item.answer, len(item.options)),
                           float(inside_spans(times[row], item.time_spans).mean()), item.kind)
              for a, row in zip(texts, sets.positions.numpy())]
    advantages = mixed_advantages(torch.as_tensor(np.asarray(totals)), None, "none")
    if not bool(torch.all(advantages == 0)):
        policy_loss(logprob_terms(logits, sets.draw_order.to(logits.device), "first-draw"), advantages).backward()
    _sync(args.device)
    split["head"] += clock() - t
    return split


def run_naive(args: argparse.Namespace, data: tuple[Path, Path], agent_dir: Path, answerer: Any) -> dict:
    """The naive loop for ``--steps`` steps, same prompt order, seeds and optimizer as ``train()``."""
    import torch

    from tspo_eval.agent import TemporalAgent
    from tspo_eval.training.data import load_training_items
    from tspo_eval.training.rollout import prompt_seed
    from tspo_eval.training.schedules import LinearDecay, tau_at
    from tspo_eval.training.trainer import GRAD_CLIP, UNUSED_PARAMETERS, EpochOrder

    items = load_training_items("synthetic", data[0], data[1])
    agent = TemporalAgent.from_pretrained(str(agent_dir), device=args.device, dtype=clip_dtype(args))
    agent.head.requires_grad_(True)
    params = [p for name, p in agent.head.named_parameters() if name not in UNUSED_PARAMETERS]
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(args.steps))
    order, recorder, steps = EpochOrder(len(items), args.seed), RecordingAnswerer(answerer), []
    for step in range(args.steps):
        t0 = time.perf_counter()
        tau = tau_at(step, args.steps, 0.025)
        acc = [torch.zeros(p.shape, dtype=torch.float64, device=p.device) for p in params]
        sums = {"decode_clip": 0.0, "decode_sets": 0.0, "answerer": 0.0, "head": 0.0}
        for prompt in range(args.prompts_per_step):
            item = items[order(step * args.prompts_per_step + prompt)]
            generator = torch.Generator().manual_seed(prompt_seed(args.seed, step, prompt))
            for key, value in naive_prompt(agent, item, tau, generator, args, recorder).items():
                sums[key] += value
            for a, p in zip(acc, params):
                if p.grad is not None:
                    a += p.grad.double()
                    p.grad = None
        t = time.perf_counter()
        for a, p in zip(acc, params):
            p.grad = (a / args.prompts_per_step).to(p.dtype)
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(args.device)
        sums["head"] += time.perf_counter() - t
        steps.append({**sums, "wall": time.perf_counter() - t0})
    head = {k: v.detach().float().cpu() for k, v in agent.head.state_dict().items()}
    return {"steps": steps, "seen": recorder.seen, "head": head}
