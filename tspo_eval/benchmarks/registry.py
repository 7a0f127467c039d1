"""Name -> Benchmark lookup (every benchmark module is imported here: they are light)."""
from __future__ import annotations

from tspo_eval.benchmarks.base import Benchmark, unknown_benchmark
from tspo_eval.benchmarks.longvideobench import LongVideoBench
from tspo_eval.benchmarks.lvbench import LVBench
from tspo_eval.benchmarks.mlvu import MLVU
from tspo_eval.benchmarks.synthetic import Synthetic
from tspo_eval.benchmarks.videomme import VideoMME
from tspo_eval.errors import InputError
from tspo_eval.selector_options import STRATEGIES

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


def find_benchmark(task_or_dataset_name: str | None) -> Benchmark | None:
    """The benchmark a host task / dataset / file name belongs to (:meth:`Benchmark.matches`), else None.

    ``videomme_w_subtitle``, ``Video-MME_64frame`` -> Video-MME; ``longvideobench_val_v``, ``lvb`` ->
    LongVideoBench; ``tspo_lvbench``, ``LVBench_64frame`` -> LVBench.
    """
    for name in BENCHMARK_NAMES:
        bench = get_benchmark(name)
        if bench.matches(task_or_dataset_name):
            return bench
    return None


def benchmark_name_for(task_or_dataset_name: str | None) -> str:
    """The benchmark name recorded for a task (index records, logs): the recognised benchmark's name,
    else the task name itself (``"unknown"`` for none)."""
    bench = find_benchmark(task_or_dataset_name)
    return bench.name if bench is not None else (task_or_dataset_name or "unknown")


def resolve_strategy(strategy: str, task_or_dataset_name: str | None = None) -> str:
    """``"auto"`` -> the recognised benchmark's :attr:`~Benchmark.default_strategy` (bin-max for
    Video-MME), ``topk`` for anything else; other names are checked and returned.

    Raises:
        InputError: an unknown strategy name.
    """
    if strategy == "auto":
        bench = find_benchmark(task_or_dataset_name)
        return bench.default_strategy if bench is not None else "topk"
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of auto, {', '.join(STRATEGIES)}")
    return strategy
