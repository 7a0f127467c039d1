"""The one logging setup of every ``tspo-eval`` command: loguru to stderr at one level.

``tspo-eval`` shows INFO and above by default, DEBUG with ``-v/--verbose`` and only warnings and
errors with ``--quiet``.  :func:`cli_logging` is entered once, by :func:`tspo_eval.cli.main`,
around the whole command; library code only ever calls ``logger.<level>(...)``.

Loguru starts with a default handler that prints everything from DEBUG up. While a command runs
that handler is taken out and ours put in; afterwards the default is put back, so calling
``main()`` from a notebook or a test leaves loguru as it found it. When the default handler was
already replaced by someone else (an application embedding us), their handlers are left alone
and ours is only added for the duration of the command.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from loguru import logger

DEFAULT_LEVEL = "INFO"
LOG_FORMAT = "{time:HH:mm:ss} {level: <7} {message}"


class _DefaultHandler:
    """Id of loguru's stock stderr handler: 0 at import, a new id each time we put it back."""

    handler_id: int | None = 0


def add_logging_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool = False) -> None:
    """Add ``-v/--verbose`` and ``--quiet`` (mutually exclusive) to ``parser``.

    ``suppress_defaults``: leave the attributes unset when the flag is absent (sub-command
    parsers, so a flag given before the sub-command is not overwritten by the sub-command's default).
    """
    group = parser.add_mutually_exclusive_group()
    verbose_default = argparse.SUPPRESS if suppress_defaults else False
    quiet_default = argparse.SUPPRESS if suppress_defaults else False
    group.add_argument("-v", "--verbose", action="store_true", default=verbose_default,
                       help="also log DEBUG messages (model loading, cache use, retries)")
    group.add_argument("--quiet", action="store_true", default=quiet_default,
                       help="log only warnings and errors")


def level_from_args(args: argparse.Namespace) -> str:
    """``DEBUG`` for ``--verbose``, ``WARNING`` for ``--quiet``, else :data:`DEFAULT_LEVEL`."""
    if getattr(args, "verbose", False):
        return "DEBUG"
    if getattr(args, "quiet", False):
        return "WARNING"
    return DEFAULT_LEVEL


def _write_stderr(message: str) -> None:
    sys.stderr.write(message)  # looked up at each call: follows redirections (tests, notebooks)


@contextlib.contextmanager
def cli_logging(level: str = DEFAULT_LEVEL) -> Iterator[int]:
    """Log to stderr at ``level`` and above while the block runs; yields our handler id."""
    default_id = _DefaultHandler.handler_id
    removed_default = False
    if default_id is not None:
        try:
            logger.remove(default_id)
            removed_default = True
        except ValueError:  # already removed by the embedding application: not ours to restore
            _DefaultHandler.handler_id = None
    handler_id = logger.add(_write_stderr, level=level, format=LOG_FORMAT, colorize=False)
    try:
        yield handler_id
    finally:
        logger.remove(handler_id)
        if removed_default:
            # same level and format as loguru's default, but following sys.stderr like ours
            _DefaultHandler.handler_id = logger.add(_write_stderr, level="DEBUG")
