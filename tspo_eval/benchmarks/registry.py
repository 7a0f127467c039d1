"""Name -> Benchmark lookup (every benchmark module is imported here: they are light)."""
from __future__ import annotations

from tspo_eval.benchmarks.base import Benchmark, unknown_benchmark
from tspo_eval.benchmarks.longvideobench import LongVideoBench
from tspo_eval.benchmarks.lvbench import LVBench
from tspo_eval.benchmarks.mlvu import MLVU
from tspo_eval.benchmarks.synthetic import Synthetic
from tspo_eval.benchmarks.videomme import VideoMME

BENCHMARK_NAMES = ("longvideobench", "mlvu", "videomme", "lvbench", "synthetic")
_CLASSES: dict[str, type[Benchmark]] = {
    "longvideobench": LongVideoBench, "mlvu": MLVU, "videomme": VideoMME, "lvbench": LVBench, "synthetic": Synthetic,
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
        _INSTANCES[key] = _CLASSES[key]()
    return _INSTANCES[key]
