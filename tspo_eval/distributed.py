"""Rank / world size under ``accelerate launch`` or ``torchrun``, work sharding, and a CPU barrier.

Both launchers export ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``
to every process (on every node), so this module reads those and, when ``WORLD_SIZE > 1``, joins
a ``torch.distributed`` process group with the gloo backend: it only synchronises (barrier,
sum of counts), tensors stay on the CPU, so it works beside models on any device.
"""
from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from loguru import logger

from tspo_eval.errors import InputError

T = TypeVar("T")

#: seconds a rank waits at a barrier for the slowest rank (override: ``TSPO_EVAL_DIST_TIMEOUT``)
DEFAULT_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DistContext:
        """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (single process when unset)."""
        env = os.environ if env is None else env
        try:
            world = int(env.get("WORLD_SIZE", "1"))
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise InputError(f"bad RANK/WORLD_SIZE/LOCAL_RANK in the environment: {exc}") from exc
        if world < 1 or not 0 <= rank < world:
            raise InputError(f"RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
        return cls(rank=rank, world_size=world, local_rank=local)

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items``: every ``world_size``-th item from position ``rank``."""
        return list(items[self.rank :: self.world_size])

    def default_device(self) -> str:
        """``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
        import torch

        return f"cuda:{self.local_rank % max(torch.cuda.device_count(), 1)}" if torch.cuda.is_available() else "cpu"


class ProcessGroup:
    """A gloo process group for synchronising ranks; a no-op for a single process."""

    def __init__(self, ctx: DistContext, timeout_s: float | None = None) -> None:
        self.ctx = ctx
        self._owned = False
        if not ctx.is_distributed:
            return
        import torch.distributed as dist

        if not dist.is_initialized():
            missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
            if missing:
                raise InputError(f"WORLD_SIZE={ctx.world_size} but {', '.join(missing)} not set; "
                                 "start the job with `accelerate launch` or `torchrun`")
            timeout = timeout_s or float(os.environ.get("TSPO_EVAL_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
            dist.init_process_group(backend="gloo", init_method="env://", rank=ctx.rank,
                                    world_size=ctx.world_size, timeout=datetime.timedelta(seconds=timeout))
            self._owned = True
            logger.debug("rank {}/{}: joined the gloo process group", ctx.rank, ctx.world_size)
        self._group = dist.new_group(backend="gloo") if not self._owned else None

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.ctx.is_distributed:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def sum(self, value: int) -> int:
        """Sum of ``value`` over all ranks (also a barrier)."""
        if not self.ctx.is_distributed:
            return int(value)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([int(value)], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._group)
        return int(tensor.item())

    def close(self) -> None:
        if self._owned:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owned = False

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
