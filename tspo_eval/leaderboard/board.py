"""Build a leaderboard: every run against the uniform baseline of the same model and frame budget.

For each benchmark and run, rows are produced for the overall accuracy and for every value of
the benchmark's official breakdowns.  A row compared with a baseline carries the paired
difference on the questions both runs answered (bootstrap CI, exact McNemar test) and the
number of questions only one of the two answered (never silently dropped).  Percentages are
percent (accuracy) and percentage points (differences).
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from loguru import logger
from tqdm import tqdm

from tspo_eval.errors import InputError
from tspo_eval.leaderboard.run import Run
from tspo_eval.leaderboard.stats import (
    accuracy_and_paired_bootstrap,
    bootstrap_accuracy_ci,
    mcnemar_exact,
    paired_bootstrap,
)

OVERALL = "overall"
MACRO = "macro"
ROLE_BASELINE, ROLE_COMPARED, ROLE_NONE = "baseline", "compared", "no-baseline"


@dataclass
class Row:
    """One line of a leaderboard: a run on a benchmark slice (overall, or one breakdown value)."""

    benchmark: str
    run: str
    model: str
    frame_source: str
    num_frames: int | None
    breakdown: str                 # "overall", a breakdown name, or "macro"
    value: str                     # breakdown value ("" for overall; the averaged breakdown for macro)
    role: str                      # baseline / compared / no-baseline
    n: int
    correct: int
    accuracy: float                # % over the run's own questions in this slice
    accuracy_low: float
    accuracy_high: float
    baseline: str | None = None
    n_paired: int = 0
    only_run: int = 0              # questions of this slice answered by the run but not by the baseline
    only_baseline: int = 0
    accuracy_paired: float = math.nan
    baseline_accuracy_paired: float = math.nan
    delta: float = math.nan        # percentage points, run - baseline, on the paired questions
    delta_low: float = math.nan
    delta_high: float = math.nan
    mcnemar_b: int | None = None   # run right, baseline wrong
    mcnemar_c: int | None = None   # run wrong, baseline right
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Leaderboard:
    """All rows plus what is needed to render them."""

    runs: list[Run]
    rows: list[Row]
    settings: dict[str, Any]
    breakdowns: dict[str, list[str]] = field(default_factory=dict)   # benchmark -> breakdown names
    notes: list[str] = field(default_factory=list)

    @property
    def benchmarks(self) -> list[str]:
        return list(dict.fromkeys(r.benchmark for r in self.runs))

    def select(self, benchmark: str, breakdown: str = OVERALL) -> list[Row]:
        return [r for r in self.rows if r.benchmark == benchmark and r.breakdown == breakdown]


def _official_breakdowns(benchmark: str) -> tuple[tuple[str, ...], str | None]:
    try:
        from tspo_eval.benchmarks import get_benchmark

        bench = get_benchmark(benchmark)
        return tuple(bench.breakdowns), getattr(bench, "macro_breakdown", None)
    except (ImportError, InputError):
        return (), None


def question_categories(runs: Sequence[Run], records: Sequence[Any] | None) -> dict[str, dict[str, list[str]]]:
    """question id -> breakdown -> values: the annotation's records first, then any run's own."""
    out: dict[str, dict[str, list[str]]] = {}
    for record in records or ():
        out[str(record.question_id)] = {k: [str(v) for v in vs] for k, vs in record.categories.items()}
    for run in runs:
        for qid, cats in run.categories.items():
            if cats and not out.get(qid):
                out[qid] = cats
    return out


def _value_key(value: str) -> tuple:
    return (0, float(value), "") if re.fullmatch(r"-?\d+(\.\d+)?", value) else (1, 0.0, value)


def choose_baselines(runs: Sequence[Run], baseline: str | None, notes: list[str]) -> dict[str, Run | None]:
    """run name -> its baseline run (same benchmark), or None.

    Without ``baseline``: the uniform run of the same model and frame budget.  With it: the run
    named ``baseline`` in the same benchmark, for every other run.
    """
    out: dict[str, Run | None] = {}
    bench = runs[0].benchmark if runs else ""
    if baseline is not None:
        chosen = next((r for r in runs if r.name == baseline), None)
        if chosen is None:
            notes.append(f"{bench}: no run named {baseline!r}; no deltas")
        for run in runs:
            out[run.name] = chosen if chosen is not None and chosen is not run else None
        return out
    for run in runs:
        candidates = [r for r in runs if r is not run and r.frame_source == "uniform"
                      and r.model == run.model and r.num_frames == run.num_frames]
        if run.frame_source == "uniform" and candidates:
            candidates = []   # a uniform run is a baseline, not compared with another uniform run
        if len(candidates) > 1:
            notes.append(f"{bench}: several uniform runs of {run.model} at {run.num_frames} frames "
                         f"({', '.join(c.name for c in candidates)}); {candidates[0].name} is the baseline of {run.name}")
        if not candidates and run.frame_source != "uniform":
            notes.append(f"{bench}: no uniform run of {run.model} at {run.num_frames} frames; "
                         f"{run.name} has no delta (use --baseline NAME)")
        out[run.name] = candidates[0] if candidates else None
    return out


class _Stats:
    def __init__(self, n_boot: int, seed: int, confidence: float) -> None:
        self.n_boot, self.seed, self.confidence = n_boot, seed, confidence

    def make_row(self, run: Run, base: Run | None, qids: Sequence[str], base_qids: Sequence[str] | None,
                 breakdown: str, value: str, role: str) -> Row:
        outcomes = np.array([run.outcomes[q] for q in qids], dtype=bool)
        theirs = set(base_qids) if base is not None and base_qids is not None else None
        paired = [q for q in qids if q in theirs] if theirs is not None else []
        base_outcomes = np.array([base.outcomes[q] for q in paired], dtype=bool) if base is not None else None
        if base_outcomes is not None and len(paired) == len(qids):   # same questions: share the draws
            acc, delta = accuracy_and_paired_bootstrap(outcomes, base_outcomes, self.n_boot, self.seed,
                                                       self.confidence)
        else:
            acc = bootstrap_accuracy_ci(outcomes, self.n_boot, self.seed, self.confidence)
            delta = None
        row = Row(benchmark=run.benchmark, run=run.name, model=run.model, frame_source=run.frame_source,
                  num_frames=run.num_frames, breakdown=breakdown, value=value, role=role, n=len(qids),
                  correct=int(outcomes.sum()), accuracy=100 * acc.estimate, accuracy_low=100 * acc.low,
                  accuracy_high=100 * acc.high)
        if base is None or theirs is None or base_outcomes is None:
            return row
        a = outcomes if len(paired) == len(qids) else np.array([run.outcomes[q] for q in paired], dtype=bool)
        b = base_outcomes
        if delta is None:
            delta = paired_bootstrap(a, b, self.n_boot, self.seed, self.confidence)
        test = mcnemar_exact(a, b)
        mine = set(qids)
        row.baseline, row.n_paired = base.name, len(paired)
        row.only_run, row.only_baseline = len(mine - theirs), len(theirs - mine)
        if paired:
            row.accuracy_paired, row.baseline_accuracy_paired = 100 * a.mean(), 100 * b.mean()
        row.delta, row.delta_low, row.delta_high = 100 * delta.estimate, 100 * delta.low, 100 * delta.high
        row.mcnemar_b, row.mcnemar_c, row.p_value = test.b, test.c, test.p_value
        return row


def _macro_row(run: Run, base: Run | None, slices: dict[str, tuple[list[str], list[str] | None]],
               name: str, role: str) -> Row:
    """Unweighted mean over the values of breakdown ``name`` (MLVU's lmms-eval number); no CI."""
    accs = [100 * np.mean([run.outcomes[q] for q in qids]) for qids, _ in slices.values() if qids]
    row = Row(benchmark=run.benchmark, run=run.name, model=run.model, frame_source=run.frame_source,
              num_frames=run.num_frames, breakdown=MACRO, value=name, role=role,
              n=sum(len(q) for q, _ in slices.values()), correct=sum(run.outcomes[q] for qs, _ in slices.values() for q in qs),
              accuracy=float(np.mean(accs)) if accs else math.nan, accuracy_low=math.nan, accuracy_high=math.nan)
    if base is not None:
        mine, theirs = [], []
        for qids, base_qids in slices.values():
            theirs_set = set(base_qids or ())
            paired = [q for q in qids if q in theirs_set]
            if paired:
                mine.append(100 * np.mean([run.outcomes[q] for q in paired]))
                theirs.append(100 * np.mean([base.outcomes[q] for q in paired]))
        row.baseline = base.name
        if mine:
            row.accuracy_paired, row.baseline_accuracy_paired = float(np.mean(mine)), float(np.mean(theirs))
            row.delta = row.accuracy_paired - row.baseline_accuracy_paired
    return row


def build_leaderboard(
    runs: Sequence[Run],
    baseline: str | None = None,
    n_boot: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
    annotations: Mapping[str, Sequence[Any]] | None = None,
    progress: bool = False,
) -> Leaderboard:
    """Rows for every benchmark, run and breakdown value (see the module docstring)."""
    if not runs:
        raise InputError("no runs to compare")
    stats = _Stats(n_boot, seed, confidence)
    board = Leaderboard(runs=list(runs), rows=[], settings={"bootstrap": n_boot, "seed": seed,
                                                             "confidence": confidence, "baseline": baseline})
    for run in runs:
        if run.duplicates:
            board.notes.append(f"{run.benchmark}: {run.name} has {run.duplicates} duplicate question ids "
                               f"(first answer kept)")
        for key, what in (("unparsed", "answers without an option letter"),
                          ("video_missing", "questions whose video was missing"),
                          ("missing", "questions without a prediction (left out)")):
            if run.details.get(key):
                board.notes.append(f"{run.benchmark}: {run.name}: {run.details[key]} {what}")
    for bench in tqdm(board.benchmarks, desc="leaderboard", disable=not progress):
        group = [r for r in runs if r.benchmark == bench]
        baselines = choose_baselines(group, baseline, board.notes)
        used_as_base = {b.name for b in baselines.values() if b is not None}
        cats = question_categories(group, (annotations or {}).get(bench))
        official, macro = _official_breakdowns(bench)
        seen = list(dict.fromkeys(k for c in cats.values() for k in c))
        names = [b for b in official if b in seen] or seen
        board.breakdowns[bench] = names
        for run in group:
            base = baselines[run.name]
            role = ROLE_BASELINE if run.name in used_as_base else ROLE_COMPARED if base else ROLE_NONE
            all_q = list(run.outcomes)
            board.rows.append(stats.make_row(run, base, all_q, list(base.outcomes) if base else None,
                                             OVERALL, "", role))
            missing = sum(1 for q in all_q if not cats.get(q))
            if names and missing:
                board.notes.append(f"{bench}: {missing} questions of {run.name} have no categories "
                                   f"(not in any breakdown)")
            for name in names:
                slices = _slices(run, base, cats, name)
                for value, (qids, base_qids) in slices.items():
                    board.rows.append(stats.make_row(run, base, qids, base_qids, name, value, role))
                if name == macro:
                    board.rows.append(_macro_row(run, base, slices, name, role))
    logger.info("leaderboard: {} rows over {} benchmarks", len(board.rows), len(board.benchmarks))
    return board


def _slices(run: Run, base: Run | None, cats: dict[str, dict[str, list[str]]], name: str
            ) -> dict[str, tuple[list[str], list[str] | None]]:
    """breakdown value -> (run's question ids, baseline's question ids or None), values sorted."""
    values: dict[str, tuple[list[str], list[str] | None]] = {}
    owners = [(run, 0)] + ([(base, 1)] if base is not None else [])
    for owner, slot in owners:
        for qid in owner.outcomes:
            for value in cats.get(qid, {}).get(name, ()):
                entry = values.setdefault(value, ([], [] if base is not None else None))
                entry[slot].append(qid)
    return {v: values[v] for v in sorted(values, key=_value_key)}
