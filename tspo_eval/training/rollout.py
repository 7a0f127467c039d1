"""One prompt's rollout: score, sample G frame sets, decode their union once, answer in one call,
rewards, advantages and the backward pass of the prompt's loss."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from tspo_eval.answering import Answerer, AnswerRequest, GenerationSettings
from tspo_eval.training.advantages import mixed_advantages
from tspo_eval.training.data import Candidates, Span, TrainingItem, oracle_positions
from tspo_eval.training.policy import (
    gumbel_top_k,
    logprob_terms,
    policy_loss,
    trainable_scores,
)
from tspo_eval.training.rewards import answer_reward, inside_spans, total_reward

if TYPE_CHECKING:
    from tspo_eval.training.frame_store import DecodedFrameStore


@dataclass(frozen=True)
class RolloutConfig:
    """The per-prompt settings: G, K, log-probability kind, off-policy mode, decoder, and where
    frames come from (``frame_store``: the run's decoded-frame store; None: decoded per prompt)."""

    group_size: int
    num_frames: int
    logprob: str = "first-draw"
    off_policy: str = "none"
    decoder: str = "auto"
    frame_store: DecodedFrameStore | None = field(default=None, compare=False, repr=False)


def decode_sets(cands: Candidates, position_sets: np.ndarray, decoder: str,
                frame_store: DecodedFrameStore | None = None) -> list[np.ndarray]:
    """uint8 ``[K, H, W, 3]`` frames of every set ``[G, K]``; each source frame is read once.

    With ``frame_store`` the frames are rows of each source video's stored candidates (the video is
    decoded into the store on its first use); without, the union is decoded from the videos now.
    """
    from tspo_eval import video as video_io

    needed = np.unique(position_sets.reshape(-1))
    decoded: dict[int, np.ndarray] = {}
    for source in np.unique(cands.source_index[needed]):
        rows = needed[cands.source_index[needed] == source]
        numbers = np.unique(cands.frames[rows])
        path = cands.sources[int(source)]
        pixels = (frame_store.source_frames(path, numbers) if frame_store is not None
                  else video_io.decode_frames(path, numbers.tolist(), decoder=decoder))
        where = {int(n): i for i, n in enumerate(numbers.tolist())}
        for row in rows.tolist():
            decoded[row] = pixels[where[int(cands.frames[row])]]
    return [np.stack([decoded[int(p)] for p in row]) for row in position_sets]


#: greedy, and long enough for "The answer is (C) ..." style answers
ANSWER_SETTINGS = GenerationSettings(max_new_tokens=16)


def run_prompt(head: nn.Module, item: TrainingItem, cands: Candidates, spans: list[Span], text: Tensor, tau: float,
               config: RolloutConfig, answerer: Answerer, generator: torch.Generator) -> dict[str, float]:
    """Roll out one prompt and back-propagate its loss into ``head``'s ``.grad`` (unscaled).

    Args:
        cands: the candidates sampled from (``[T]`` frames); ``spans``: the ground truth in their time.
        text: ``F_t`` ``[1, D]``.
    Returns:
        Counters (see :data:`tspo_eval.training.metrics.SUM_FIELDS`) of this prompt.
    """
    clock = time.perf_counter
    t0 = clock()
    logits = trainable_scores(head, cands.features, text) / tau  # [T], with grad
    oracle = oracle_positions(cands.times, spans, config.num_frames) if config.off_policy != "none" else None
    n_on = config.group_size - (1 if oracle is not None else 0)
    sets = gumbel_top_k(logits.detach(), config.num_frames, n_on, generator)
    positions, draw = sets.positions, sets.draw_order
    if oracle is not None:
        o = torch.as_tensor(oracle, dtype=torch.long)
        o_draw = o[torch.argsort(-logits.detach().cpu()[o], stable=True)]  # its most likely draw order
        positions = torch.cat([positions, o[None]])
        draw = torch.cat([draw, o_draw[None]])
    head_s = clock() - t0

    t1 = clock()
    frame_sets = decode_sets(cands, positions.numpy(), config.decoder, config.frame_store)
    decode_s = clock() - t1  # with the store: its first fill of a video and its reads
    duration = item.duration if item.duration and cands.sources == [item.video] else cands.duration
    requests = [AnswerRequest.multiple_choice(frames, cands.times[row].tolist(), duration, item.question, item.options,
                                              ANSWER_SETTINGS, item=item.question_id, prompt=item.prompt)
                for frames, row in zip(frame_sets, positions.numpy())]
    t2 = clock()
    texts = answerer.answer(requests, batch_size=len(requests))  # the G answers of a group in one call
    answer_s = clock() - t2
    if len(texts) != len(requests):
        raise RuntimeError(f"answerer {getattr(answerer, 'name', answerer)} returned {len(texts)} answers for "
                           f"{len(requests)} requests")

    r_a = np.asarray([answer_reward(t, item.answer, len(item.options)) for t in texts])
    inside = [inside_spans(cands.times[row], spans) for row in positions.numpy()]
    r_t = np.asarray([float(m.mean()) for m in inside])
    totals = np.asarray([total_reward(a, t, item.kind) for a, t in zip(r_a, r_t)])
    on = slice(0, n_on)
    advantages = mixed_advantages(torch.as_tensor(totals[on]), float(totals[-1]) if oracle is not None else None,
                                  config.off_policy)
    t3 = clock()
    zero = bool(torch.all(advantages == 0))
    loss_value = 0.0
    if not zero:
        loss = policy_loss(logprob_terms(logits, draw.to(logits.device), config.logprob), advantages)
        loss.backward()
        loss_value = float(loss.detach())
    head_s += clock() - t3
    on_totals = totals[on]
    return {
        "prompts": 1.0, "failed": 0.0, "loss": loss_value, "samples": float(n_on),
        "reward": float(on_totals.sum()), "reward_sq": float((on_totals ** 2).sum()),
        "r_a": float(r_a[on].sum()), "r_t": float(r_t[on].sum()), "zero_grad_groups": float(zero),
        "span_frames_in": float(sum(m.sum() for m in inside[on])) if spans else 0.0,
        "span_frames": float(n_on * config.num_frames) if spans else 0.0,
        "seconds_decode": decode_s, "seconds_answerer": answer_s, "seconds_head": head_s,
    }


def prompt_seed(seed: int, step: int, prompt: int, stream: int = 0) -> int:
    """The seed of the generator of global prompt ``prompt`` of step ``step`` (independent of ranks);
    ``stream`` separates other uses (1: the epoch permutations)."""
    entropy = [int(stream), int(seed) % (2 ** 63), int(step), int(prompt)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def empty_counters() -> dict[str, Any]:
    from tspo_eval.training.metrics import SUM_FIELDS

    return {k: 0.0 for k in SUM_FIELDS}
