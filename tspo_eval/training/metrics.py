"""What a user watches: ``DIR/metrics.jsonl`` (one line per step), ``DIR/failures.jsonl``, ``DIR/curves.png``."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tspo_eval.atomic_files import atomic_output, atomic_write

#: per-step sums every rank accumulates (summed over ranks before the means are taken)
SUM_FIELDS: tuple[str, ...] = (
    "prompts", "failed", "loss", "samples", "reward", "reward_sq", "r_a", "r_t", "zero_grad_groups",
    "span_frames_in", "span_frames", "seconds_decode", "seconds_answerer", "seconds_head",
)


def step_record(step: int, sums: dict[str, float], tau: float, lr: float, grad_norm: float,
                seconds_step: float) -> dict[str, Any]:
    """The metrics line of optimizer step ``step`` (1-based: the number of steps done) from the summed counters.

    ``reward_*``, ``r_a``, ``r_t``: over the on-policy samples; ``loss``: mean over prompts;
    ``zero_grad_share``: prompts whose group had all-equal advantages; ``span_frame_share``:
    sampled frames inside a ground-truth span / sampled frames (items with spans only).
    """
    samples, prompts = max(sums["samples"], 1.0), max(sums["prompts"], 1.0)
    mean = sums["reward"] / samples
    var = max(sums["reward_sq"] / samples - mean * mean, 0.0) * samples / max(samples - 1.0, 1.0)
    return {
        "step": step,
        "loss": sums["loss"] / prompts,
        "reward_mean": mean,
        "reward_std": math.sqrt(var),
        "r_a": sums["r_a"] / samples,
        "r_t": sums["r_t"] / samples,
        "tau": tau,
        "lr": lr,
        "grad_norm": grad_norm,
        "zero_grad_share": sums["zero_grad_groups"] / prompts,
        "span_frame_share": sums["span_frames_in"] / sums["span_frames"] if sums["span_frames"] else None,
        "prompts": int(sums["prompts"]),
        "failed": int(sums["failed"]),
        "seconds_decode": sums["seconds_decode"],
        "seconds_answerer": sums["seconds_answerer"],
        "seconds_head": sums["seconds_head"],
        "seconds_step": seconds_step,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file (a torn last line is ignored); [] when missing."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


class JsonlLog:
    """An append-only JSONL file (each line flushed); ``keep`` rewrites it with only some lines (resume)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def keep(self, predicate) -> None:
        """Atomically rewrite the file with the records for which ``predicate(record)`` is true."""
        rows = [r for r in read_jsonl(self.path) if predicate(r)]
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.append(record)


def plot_curves(metrics: list[dict[str, Any]], png: Path, title: str = "") -> None:
    """``curves.png``: reward (mean, R_A, R_T), loss, grad norm, span-frame share and eval hit rate per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m["step"] for m in metrics if "loss" in m]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), constrained_layout=True)
    train = [m for m in metrics if "loss" in m]
    for key, label in (("reward_mean", "reward"), ("r_a", "R_A"), ("r_t", "R_T")):
        axes[0, 0].plot(steps, [m[key] for m in train], label=label)
    axes[0, 0].set_title("reward (on-policy samples)")
    axes[0, 0].legend()
    axes[0, 1].plot(steps, [m["loss"] for m in train], label="loss")
    axes[0, 1].plot(steps, [m["grad_norm"] for m in train], label="grad norm (before clip)")
    axes[0, 1].set_title("loss and gradient norm")
    axes[0, 1].legend()
    share = [(m["step"], m["span_frame_share"]) for m in train if m.get("span_frame_share") is not None]
    if share:
        axes[1, 0].plot(*zip(*share), label="sampled frames in gt spans")
    axes[1, 0].plot(steps, [m["zero_grad_share"] for m in train], label="zero-gradient groups")
    axes[1, 0].set_title("shares")
    axes[1, 0].legend()
    evals = [m for m in metrics if "eval_hit_rate" in m]
    if evals:
        axes[1, 1].plot([m["step"] for m in evals], [m["eval_hit_rate"] for m in evals], marker="o", label="hit rate")
        axes[1, 1].plot([m["step"] for m in evals], [m["eval_frame_fraction"] for m in evals], marker="o",
                        label="frame fraction")
        axes[1, 1].legend()
    axes[1, 1].set_title("held-out span hits (top-K)")
    for ax in axes.flat:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    with atomic_output(png) as handle:
        fig.savefig(handle, format="png", dpi=90)
    plt.close(fig)
