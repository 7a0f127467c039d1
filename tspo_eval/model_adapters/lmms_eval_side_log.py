"""Side logs of the lmms-eval TSPO models: the frames of answers whose samples file cannot hold them.

The ``tspo_*`` tasks put every answer's frames into lmms-eval's own samples file
(:mod:`tspo_eval.frame_records`).  Built-in tasks (``videomme``, ``longvideobench_val_v``, ...)
score with their own ``process_results``, so their frames go to a side JSONL of
:class:`~tspo_eval.frame_index_cache.index_store.IndexRecord` lines instead:

* ``selection_log=PATH`` (model_arg), else ``$TSPO_EVAL_SELECTION_LOG``: a ``.jsonl`` path (may hold
  ``{task}`` and ``{rank}``) or a folder.  Given this way, the frames of *every* task are logged,
  ``tspo_*`` ones included;
* else, for built-in tasks only:
  ``./tspo_selection_logs/<date>_<model>_<frame_selection>_frames_<task>.jsonl``.

Each file's path is logged once at INFO when its first line is written.  With several ranks each
rank writes its own ``.rank<r>`` file and rank 0 merges them into one file per task at the end.
"""
from __future__ import annotations

import glob
import os
import re
import time
from pathlib import Path
from typing import Any

from loguru import logger

from tspo_eval.frame_source import SelectionLog

#: environment variable naming the side log when the ``selection_log`` model_arg is not given
ENV_SELECTION_LOG = "TSPO_EVAL_SELECTION_LOG"
#: folder (relative to the working directory) of the default side logs
DEFAULT_LOG_FOLDER = "tspo_selection_logs"
#: tasks whose samples file carries the frames (our lmms-eval tasks)
TSPO_TASK_PREFIX = "tspo_"


def frames_go_to_samples(task: str) -> bool:
    """Whether ``task``'s own samples file records the frames (the ``tspo_*`` tasks)."""
    return str(task).startswith(TSPO_TASK_PREFIX)


def explicit_selection_log(model_arg: str | None) -> str | None:
    """The side-log path the user chose: the ``selection_log`` model_arg, else ``$TSPO_EVAL_SELECTION_LOG``."""
    return model_arg or os.environ.get(ENV_SELECTION_LOG) or None


def log_stamp() -> str:
    """Date id of a side log's name (local time, as lmms-eval's own file names)."""
    return time.strftime("%Y%m%d_%H%M%S")


def side_log_template(explicit: str | None, model: str, frame_selection: str, stamp: str, world_size: int) -> str:
    """Path template (``{task}``, ``{rank}``) of the side log.

    ``explicit``: a ``.jsonl`` path used as given, or a folder that gets the default file name
    ``<stamp>_<model>_<frame_selection>_frames_{task}.jsonl``; None: that name under
    ``./tspo_selection_logs``.  With several ranks, ``.rank{rank}`` goes before ``.jsonl``.
    """
    name = f"{stamp}_{model}_{frame_selection}_frames_{{task}}.jsonl"
    if explicit:
        text = os.fspath(explicit)
        template = text if text.endswith(".jsonl") else os.path.join(text, name)
    else:
        template = os.path.join(DEFAULT_LOG_FOLDER, name)
    if world_size > 1 and "{rank}" not in template:
        template = template[: -len(".jsonl")] + ".rank{rank}.jsonl" if template.endswith(".jsonl") else template + ".rank{rank}"
    return template


class SideLog:
    """Writes the records of the tasks that need a side log; announces each file once."""

    def __init__(self, template: str, *, explicit: bool, rank: int = 0) -> None:
        self.explicit = explicit
        self.log = SelectionLog(template, rank=rank)
        self._announced: set[Path] = set()

    @property
    def template(self) -> str:
        return self.log.template

    def wants(self, task: str) -> bool:
        """Every task when the user named the log; else only tasks whose samples cannot hold frames."""
        return self.explicit or not frames_go_to_samples(task)

    def write(self, record: Any, task: str) -> None:
        """Append ``record`` (an IndexRecord) to ``task``'s file when :meth:`wants` it."""
        if not self.wants(task):
            return
        path = self.log.write(record, task)
        if path not in self._announced:
            self._announced.add(path)
            logger.info("frames of task {} are logged to {}", task, path.resolve())

    def close(self) -> None:
        self.log.close()


def merge_rank_logs(template: str) -> list[Path]:
    """Merge the ``.rank<r>`` side logs of ``template`` (every task) into one file per task."""
    from tspo_eval.frame_index_cache.index_store import merge_index_files

    groups: dict[str, list[Path]] = {}
    for name in glob.glob(template.replace("{task}", "*").replace("{rank}", "*")):
        merged = re.sub(r"\.rank\d+(?=\.jsonl$|$)", "", name)
        if merged != name:
            groups.setdefault(merged, []).append(Path(name))
    for merged, parts in sorted(groups.items()):
        count = merge_index_files(sorted(parts), merged)
        for part in parts:
            part.unlink(missing_ok=True)
        logger.info("merged {} rank logs into {} ({} questions)", len(parts), merged, count)
    return [Path(m) for m in sorted(groups)]
