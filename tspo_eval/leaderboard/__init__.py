"""Leaderboards: selectors against uniform sampling with paired statistics, tables and a chart.

* :mod:`runs` (+ :mod:`lmms_runs`, :mod:`vlmeval_runs`): read runs into per-question outcomes;
* :mod:`stats`: paired bootstrap, exact McNemar;
* :mod:`board`: rows per benchmark / run / breakdown value against the uniform baseline;
* :mod:`tables`, :mod:`chart`: Markdown, CSV, JSON and PNG outputs;
* :mod:`span_hits`, :mod:`span_tables`: the selection-only board on ground-truth time spans;
* :mod:`published`: the TSPO paper's reported numbers (reference rows, only on request).
"""
from __future__ import annotations

from tspo_eval.leaderboard.board import Leaderboard, Row, build_leaderboard
from tspo_eval.leaderboard.runs import Run, assign_names, load_all, load_runs
from tspo_eval.leaderboard.stats import (
    Interval,
    McNemar,
    bootstrap_accuracy_ci,
    mcnemar_exact,
    paired_bootstrap,
)

__all__ = [
    "Interval", "Leaderboard", "McNemar", "Row", "Run", "assign_names", "bootstrap_accuracy_ci",
    "build_leaderboard", "load_all", "load_runs", "mcnemar_exact", "paired_bootstrap",
]
