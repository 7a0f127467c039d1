"""``tspo-eval tasks-path``: print the folder of the lmms-eval ``tspo_*`` task YAMLs."""
from __future__ import annotations

import argparse
from pathlib import Path


def tasks_dir() -> Path:
    """The folder to pass to ``lmms-eval --include_path``."""
    import tspo_eval.tasks

    return Path(tspo_eval.tasks.__file__).resolve().parent


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Print the folder holding the tspo_* lmms-eval tasks, for "
                          "`python -m lmms_eval --include_path $(tspo-eval tasks-path) --tasks tspo_synthetic ...`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(tasks_dir())
    return 0
