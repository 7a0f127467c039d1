"""``tspo-eval cache info|clear [--cache-dir DIR] [--json]``: inspect or empty the CLIP feature cache
(and the decoded-frame store that ``tspo-eval train`` keeps inside it)."""
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
        "dir tspo-eval/features), with the decoded-frame store `tspo-eval train` keeps in its decoded_frames/ folder."
    )
    parser.add_argument("action", choices=("info", "clear"), help="info: location, entries, size; clear: remove all entries")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: $TSPO_EVAL_CACHE_DIR or the user cache dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tspo_eval.frame_index_cache import FeatureCache
    from tspo_eval.training.frame_store import DecodedFrameStore

    cache = FeatureCache(args.cache_dir)
    store = DecodedFrameStore.for_cache(cache)
    if args.action == "info":
        info, frames = cache.info(), store.info()
        info.update(decoded_frame_files=frames["files"], decoded_frame_bytes=frames["bytes"])
        if args.json:
            print(json.dumps(info))
        else:
            print(f"root:    {info['root']}")
            print(f"entries: {info['entries']}")
            print(f"size:    {_human(info['bytes'])} ({info['bytes']} bytes)")
            print(f"decoded frames (tspo-eval train): {frames['files']} files, {_human(frames['bytes'])}")
        return 0
    removed, removed_frames = cache.clear(), store.clear()
    if args.json:
        print(json.dumps({"root": str(cache.root), "removed": removed, "removed_decoded_frame_files": removed_frames}))
    else:
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {cache.root}"
              + (f" and {removed_frames} decoded-frame file(s)" if removed_frames else ""))
    return 0
