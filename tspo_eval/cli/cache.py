"""``tspo-eval cache info|clear [--cache-dir DIR] [--json]``: inspect or empty the CLIP feature cache."""
from __future__ import annotations

import argparse
import json


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Inspect or clear the CLIP feature cache (default: $TSPO_EVAL_CACHE_DIR, else the user cache "
        "dir tspo-eval/features)."
    )
    parser.add_argument("action", choices=("info", "clear"), help="info: location, entries, size; clear: remove all entries")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $TSPO_EVAL_CACHE_DIR or the user cache dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tspo_eval.frame_index_cache import FeatureCache

    cache = FeatureCache(args.cache_dir)
    if args.action == "info":
        info = cache.info()
        if args.json:
            print(json.dumps(info))
        else:
            print(f"root:    {info['root']}")
            print(f"entries: {info['entries']}")
            print(f"size:    {_human(info['bytes'])} ({info['bytes']} bytes)")
        return 0
    removed = cache.clear()
    if args.json:
        print(json.dumps({"root": str(cache.root), "removed": removed}))
    else:
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.root}")
    return 0
