"""Read any frame-index file: our JSONL index files and TSPO's published ``*_frameIdx.json`` arrays.

The one reader the commands, the frame source and the leaderboard use; it sits above both formats
(:mod:`~tspo_eval.frame_index_cache.index_store` and :mod:`~tspo_eval.frame_index_cache.published`),
which therefore need not know each other.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from loguru import logger

from tspo_eval.errors import InputError
from tspo_eval.frame_index_cache.index_store import IndexRecord, iter_index_jsonl
from tspo_eval.frame_index_cache.published import import_published


def _is_json_array(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"[")



def read_index(path: str | Path, benchmark: str | None = None) -> dict[str, IndexRecord]:
    """Index records keyed by question id, in file order.

    Reads our JSONL files and TSPO's published ``*_frameIdx.json`` arrays (``benchmark`` names
    the benchmark of a published file when its name does not tell). The first record of a
    duplicated question id wins (a warning is logged).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"index file not found: {path}")
    if _is_json_array(path):
        records: Iterable[IndexRecord] = import_published(path, benchmark=benchmark)
    else:
        records = iter_index_jsonl(path)
    out: dict[str, IndexRecord] = {}
    duplicates = 0
    for record in records:
        if record.question_id in out:
            duplicates += 1
            continue
        out[record.question_id] = record
    if duplicates:
        logger.warning("{}: {} duplicate question ids ignored (first record kept)", path, duplicates)
    return out
