"""Name -> Benchmark lookup."""
from __future__ import annotations

import importlib

from tspo_eval.benchmarks.base import Benchmark, unknown_benchmark

BENCHMARK_NAMES = ("longvideobench", "mlvu", "videomme", "lvbench", "synthetic")
_CLASSES = {
    "longvideobench": ("tspo_eval.benchmarks.longvideobench", "LongVideoBench"),
    "mlvu": ("tspo_eval.benchmarks.mlvu", "MLVU"),
    "videomme": ("tspo_eval.benchmarks.videomme", "VideoMME"),
    "lvbench": ("tspo_eval.benchmarks.lvbench", "LVBench"),
    "synthetic": ("tspo_eval.benchmarks.synthetic", "Synthetic"),
}
_ALIASES = {"lvb": "longvideobench", "longvideobench_val": "longvideobench", "video-mme": "videomme",
            "video_mme": "videomme", "mlvu_dev": "mlvu", "mlvu_mcq": "mlvu"}
_INSTANCES: dict[str, Benchmark] = {}


def get_benchmark(name: str | Benchmark) -> Benchmark:
    """The benchmark called ``name`` (case-insensitive; a few aliases; a ``tspo_`` prefix is
    ignored); InputError for unknown names. A Benchmark instance is returned as is."""
    if isinstance(name, Benchmark):
        return name
    if not isinstance(name, str):
        raise unknown_benchmark(repr(name), BENCHMARK_NAMES)
    key = name.strip().lower()
    key = key[len("tspo_"):] if key.startswith("tspo_") else key
    key = _ALIASES.get(key, key)
    if key not in _CLASSES:
        raise unknown_benchmark(name, BENCHMARK_NAMES)
    if key not in _INSTANCES:
        module, cls = _CLASSES[key]
        _INSTANCES[key] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[key]
