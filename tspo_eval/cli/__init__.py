"""``tspo-eval`` command line.

Every sub-command lives in its own module of this package and exposes
``register(subparsers) -> None``; the module is imported only when its command runs, so
``tspo-eval --help`` stays fast.  Errors derived from :class:`tspo_eval.errors.TspoEvalError`
are printed as one line (no traceback) and give exit status 2.

Every command shares one logging setup (:mod:`tspo_eval.cli.logging_setup`: INFO by default,
``-v/--verbose`` for DEBUG, ``--quiet`` for warnings only, given before or after the command) and
one help layout (:mod:`tspo_eval.cli.parsing`: a description and the defaults of every option).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tspo_eval.cli.logging_setup import (
    add_logging_options,
    cli_logging,
    level_from_args,
)
from tspo_eval.cli.parsing import HelpFormatter, add_command, package_version
from tspo_eval.errors import TspoEvalError

# command name -> (module under tspo_eval.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "select": ("select", "pick the frames of one video for one question"),
    "cache": ("cache", "inspect or clear the CLIP feature cache"),
    "convert": ("convert", "convert benchmark annotations to JSON or VLMEvalKit TSV"),
    "score": ("score", "score predictions by a benchmark's official rule"),
    "tasks-path": ("tasks_path", "print the folder to pass to lmms-eval --include_path"),
    "precompute": ("precompute", "precompute frame indices for a whole benchmark"),
    "index": ("index", "import, export and compare frame-index files"),
    "vlmevalkit": ("vlmevalkit", "run VLMEvalKit with the TSPO models and datasets registered"),
    "leaderboard": ("leaderboard", "compare runs against the uniform baseline with paired statistics"),
    "train": ("train", "train the temporal agent (TSPO policy optimisation, TempSamp-R1 guidance)"),
}


def _command_module(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(f"tspo_eval.cli.{module_name}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s module is imported (all of them when None)."""
    parser = argparse.ArgumentParser(
        prog="tspo-eval", formatter_class=HelpFormatter,
        description="TSPO query-aware frame selection for long-video evaluation (lmms-eval and VLMEvalKit "
                    "hosts). `tspo-eval COMMAND --help` describes each command and its defaults.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    add_logging_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        if command is None or name == command:
            try:
                _command_module(name).register(add_command(sub, name, help_text))
            except ModuleNotFoundError as exc:  # a command whose module is not there yet
                if exc.name != f"tspo_eval.cli.{COMMANDS[name][0]}":
                    raise
        else:
            add_command(sub, name, help_text, add_help=False)
    return parser


#: OpenMP's default lets idle torch threads spin after each parallel region, taking the cores the
#: decoders need while CLIP runs on the CPU beside them (precompute workers, lookahead): 2 workers on
#: 2 cores ran 4.4-4.9 s with sleeping threads instead of 6.7 s (benchmarks/results/
#: bench_precompute_workers.md).  The user's own setting wins; it acts only before torch is imported.
OMP_WAIT_POLICY_DEFAULT = "PASSIVE"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tspo-eval`` console script; returns the exit status."""
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY_DEFAULT)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with cli_logging(level_from_args(args)):
            status = args.func(args)
    except TspoEvalError as exc:
        print(f"tspo-eval {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tspo-eval {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
