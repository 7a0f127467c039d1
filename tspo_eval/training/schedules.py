"""Per-optimizer-step schedules: the sampling temperature tau and the learning-rate factor."""
from __future__ import annotations

TAU_END = 0.01


def tau_at(step: int, max_steps: int, tau0: float = 0.025, tau_end: float = TAU_END) -> float:
    """``tau_t = tau0 - (tau0 - tau_end) * step / max_steps`` (linear, per optimizer step, from 0)."""
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    return tau0 - (tau0 - tau_end) * step / max_steps


def lr_factor(step: int, max_steps: int) -> float:
    """Linear decay to 0 without warm-up: ``1 - step / max_steps`` (multiplies the base lr)."""
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    return max(0.0, 1.0 - step / max_steps)


class LinearDecay:
    """Picklable ``lr_lambda`` for ``torch.optim.lr_scheduler.LambdaLR``: :func:`lr_factor` of ``max_steps``."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = int(max_steps)

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.max_steps)
