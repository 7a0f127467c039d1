"""Argument-parser pieces every ``tspo-eval`` command shares: help layout, defaults, version."""
from __future__ import annotations

import argparse
import textwrap
from importlib import metadata

from tspo_eval.cli.logging_setup import add_logging_options

DISTRIBUTION = "tspo-eval"


def package_version() -> str:
    """The installed version of the ``tspo-eval`` distribution (``importlib.metadata``)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        from tspo_eval import __version__

        return f"{__version__} (not installed)"


class HelpFormatter(argparse.HelpFormatter):
    """Wraps description paragraphs, keeps example blocks as written, and shows each option's default.

    A default is shown as ``(default: X)`` unless the help already names one, the option is a
    flag (``store_true``), or there is none (``None``, empty list, suppressed).
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Paragraphs (blank-line separated) are re-wrapped to ``width``; a block whose first line
        ends with ":" or whose later lines are indented (an example) is kept line for line."""
        blocks = []
        for block in text.strip("\n").split("\n\n"):
            lines = block.splitlines()
            if lines and (lines[0].rstrip().endswith(":") or any(line[:1] in (" ", "\t") for line in lines[1:])):
                blocks.append("\n".join(indent + line for line in lines))
            else:
                blocks.append(textwrap.fill(" ".join(block.split()), width, initial_indent=indent,
                                            subsequent_indent=indent))
        return "\n\n".join(blocks)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = (
            "%(default)" not in text
            and "default" not in text.lower()
            and action.nargs != 0                      # flags: store_true / store_false / count-less
            and default not in (None, argparse.SUPPRESS)
            and not (isinstance(default, (list, tuple)) and not default)
            and not isinstance(default, bool)
            and (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        )
        return f"{text} (default: %(default)s)".strip() if shown else action.help


def add_command(subparsers, name: str, help_text: str, description: str | None = None,
                add_help: bool = True) -> argparse.ArgumentParser:
    """A sub-command parser with the shared formatter and the ``-v/--verbose`` / ``--quiet`` flags."""
    parser = subparsers.add_parser(name, help=help_text, description=description or help_text,
                                   formatter_class=HelpFormatter, add_help=add_help)
    if add_help:
        add_logging_options(parser, suppress_defaults=True)
    return parser
