"""Reference numbers reported in the TSPO paper (Table 1), shown only with ``--published``.

These are NOT measured by this package: they are copied from the paper as reported (64 frames,
TSPO-selected vs uniformly sampled) and are always rendered in their own, labelled section /
file, never as rows of the measured tables.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

SOURCE = "TSPO paper, Table 1 (reported, not measured here)"


@dataclass(frozen=True)
class PublishedResult:
    """One reported accuracy (percent)."""

    benchmark: str
    model: str
    frame_source: str
    num_frames: int
    accuracy: float
    source: str = SOURCE
    kind: str = "published"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# benchmark -> model -> (tspo, uniform), 64 frames
_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "longvideobench": {"LLaVA-Video-7B": (63.9, 58.9), "Qwen2.5-VL-7B": (64.2, 59.0)},
    "mlvu": {"LLaVA-Video-7B": (76.3, 70.3), "Qwen2.5-VL-7B": (74.3, 65.1)},
    "videomme": {"LLaVA-Video-7B": (65.5, 64.4), "Qwen2.5-VL-7B": (65.5, 63.7)},
    "lvbench": {"LLaVA-Video-7B": (45.3, 40.2), "Qwen2.5-VL-7B": (46.4, 38.3)},
}

PUBLISHED: tuple[PublishedResult, ...] = tuple(
    PublishedResult(bench, model, source, 64, value)
    for bench, models in _TABLE1.items()
    for model, pair in models.items()
    for source, value in zip(("tspo", "uniform"), pair)
)


def published_results(benchmarks: Iterable[str] | None = None) -> list[PublishedResult]:
    """Table 1 entries, restricted to ``benchmarks`` when given (in that order)."""
    if benchmarks is None:
        return list(PUBLISHED)
    wanted = list(benchmarks)
    return sorted((p for p in PUBLISHED if p.benchmark in wanted), key=lambda p: wanted.index(p.benchmark))


def published_delta(result: PublishedResult) -> float | None:
    """Reported TSPO - uniform difference (points) for a TSPO entry, else None."""
    if result.frame_source != "tspo":
        return None
    base = next((p for p in PUBLISHED if p.benchmark == result.benchmark and p.model == result.model
                 and p.frame_source == "uniform" and p.num_frames == result.num_frames), None)
    return None if base is None else round(result.accuracy - base.accuracy, 1)
