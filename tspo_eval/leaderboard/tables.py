"""Render a :class:`~tspo_eval.leaderboard.board.Leaderboard` as Markdown, CSV and JSON.

Files written by :func:`write_outputs` (atomically) into the output folder:
``leaderboard.md``, ``leaderboard.csv`` (one line per row, full precision rounded to 4
decimals), ``leaderboard.json`` (settings, runs, rows, notes) and, only with published
numbers, ``published.csv`` -- reference rows are never written into the measured tables.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tspo_eval.atomic_files import atomic_write
from tspo_eval.leaderboard.board import MACRO, OVERALL, ROLE_BASELINE, Leaderboard, Row
from tspo_eval.leaderboard.published import SOURCE, PublishedResult, published_delta

SCHEMA = "tspo-eval/leaderboard/v1"
ROW_FIELDS = [f.name for f in fields(Row)]
PUBLISHED_FIELDS = ["kind", "source", "benchmark", "model", "frame_source", "num_frames", "accuracy", "reported_delta"]


# ---- number formatting ---------------------------------------------------------------------------
def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(x: float | None, signed: bool = False) -> str:
    """One decimal ("63.4", "+1.3"); "n/a" for missing values."""
    if _nan(x):
        return "n/a"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def fmt_p(p: float | None) -> str:
    return "n/a" if _nan(p) else f"{p:.3g}"


def ci_text(low: float, high: float, signed: bool = False) -> str:
    return "" if _nan(low) else f" [{fmt(low, signed)}, {fmt(high, signed)}]"


# ---- Markdown -------------------------------------------------------------------------------------
def md_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return out


OVERALL_HEADER = ["run", "model", "frames", "K", "n", "accuracy % [CI]", "baseline", "paired n",
                  "only run / only baseline", "Δ pp [CI]", "McNemar b / c", "p"]


def _overall_line(row: Row) -> list[str]:
    k = str(row.num_frames) if row.num_frames else "?"
    acc = fmt(row.accuracy) + ci_text(row.accuracy_low, row.accuracy_high)
    if row.baseline is None:
        base = "(baseline)" if row.role == ROLE_BASELINE else "none"
        return [row.run, row.model, row.frame_source, k, str(row.n), acc, base, "", "", "", "", ""]
    return [row.run, row.model, row.frame_source, k, str(row.n), acc, row.baseline, str(row.n_paired),
            f"{row.only_run} / {row.only_baseline}", fmt(row.delta, True) + ci_text(row.delta_low, row.delta_high, True),
            f"{row.mcnemar_b} / {row.mcnemar_c}", fmt_p(row.p_value)]


def _breakdown_cell(row: Row | None) -> str:
    if row is None:
        return ""
    cell = f"{fmt(row.accuracy)} (n={row.n})"
    if row.baseline is not None:
        cell += f" Δ {fmt(row.delta, True)}{ci_text(row.delta_low, row.delta_high, True)}"
    return cell


def to_markdown(board: Leaderboard, published: Sequence[PublishedResult] = (), breakdowns: bool = True) -> str:
    """The whole leaderboard as Markdown: one section per benchmark, then notes, then references.

    ``breakdowns=False`` leaves out the per-breakdown tables (the console summary)."""
    s = board.settings
    conf = round(100 * s["confidence"])
    lines = ["# Leaderboard", "",
             f"Measured runs. accuracy: % of each run's own questions, with a {conf}% bootstrap CI; "
             f"Δ: percentage points, run − baseline, on the questions both answered, with a paired "
             f"{conf}% bootstrap CI ({s['bootstrap']} resamples, seed {s['seed']}); McNemar: exact "
             f"two-sided test on the discordant pairs (b: run right / baseline wrong, c: the reverse).", ""]
    for bench in board.benchmarks:
        lines += [f"## {bench}", ""]
        lines += md_table(OVERALL_HEADER, [_overall_line(r) for r in board.select(bench)])
        runs = [r.run for r in board.select(bench)]
        macro = board.select(bench, MACRO)
        if macro:
            lines += ["", f"Macro mean over {macro[0].value} (no CI): "
                      + "; ".join(f"{r.run} {fmt(r.accuracy)}" + (f" (Δ {fmt(r.delta, True)})" if r.baseline else "")
                                  for r in macro)]
        for name in board.breakdowns.get(bench, []) if breakdowns else []:
            rows = board.select(bench, name)
            values = list(dict.fromkeys(r.value for r in rows))
            cells = {(r.value, r.run): r for r in rows}
            lines += ["", f"### {bench} by {name}", ""]
            lines += md_table([name] + runs, [[v] + [_breakdown_cell(cells.get((v, run))) for run in runs]
                                            for v in values])
        lines.append("")
    if board.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in board.notes] + [""]
    if published:
        lines += [f"## Reference: {SOURCE}", "",
                  "Copied from the paper for orientation; not produced by this package and not comparable "
                  "question by question.", ""]
        lines += md_table(["benchmark", "model", "frames", "K", "accuracy % (reported)", "Δ pp (difference of reported)"],
                        [[p.benchmark, p.model, p.frame_source, str(p.num_frames), fmt(p.accuracy),
                          fmt(published_delta(p), True) if p.frame_source == "tspo" else ""] for p in published])
        lines.append("")
    return "\n".join(lines)


# ---- CSV / JSON -----------------------------------------------------------------------------------
def csv_value(value: Any) -> Any:
    if _nan(value):
        return ""
    return round(value, 4) if isinstance(value, float) else value


def csv_text(fields: Sequence[str], records: Iterable[dict[str, Any]], cell: Callable[[Any], Any] = csv_value) -> str:
    """CSV text: a header of ``fields``, then ``cell(record[field])`` for each record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields)
    for data in records:
        writer.writerow([cell(data[name]) for name in fields])
    return buffer.getvalue()


def to_csv(board: Leaderboard) -> str:
    return csv_text(ROW_FIELDS, (row.to_dict() for row in board.rows))


def published_csv(published: Sequence[PublishedResult]) -> str:
    records = ({**p.to_dict(), "reported_delta": published_delta(p)} for p in published)
    return csv_text(PUBLISHED_FIELDS, records, cell=lambda value: "" if value is None else value)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def to_json(board: Leaderboard, published: Sequence[PublishedResult] = ()) -> str:
    data: dict[str, Any] = {"schema": SCHEMA, "settings": board.settings,
                            "runs": [r.describe() for r in board.runs], "breakdowns": board.breakdowns,
                            "rows": [r.to_dict() for r in board.rows], "notes": board.notes}
    if published:
        data["published"] = {"source": SOURCE, "rows": [{**p.to_dict(), "reported_delta": published_delta(p)}
                                                        for p in published]}
    return json.dumps(json_safe(data), indent=2, ensure_ascii=False, default=str) + "\n"


def write_outputs(board: Leaderboard, out_dir: str | Path, published: Sequence[PublishedResult] = (),
                  chart: bool = True) -> dict[str, Path]:
    """Write the Markdown, CSV, JSON (and PNG chart, and published.csv) files; returns kind -> path."""
    out = Path(out_dir)
    paths = {"markdown": out / "leaderboard.md", "csv": out / "leaderboard.csv", "json": out / "leaderboard.json"}
    atomic_write(paths["markdown"], to_markdown(board, published).encode("utf-8"))
    atomic_write(paths["csv"], to_csv(board).encode("utf-8"))
    atomic_write(paths["json"], to_json(board, published).encode("utf-8"))
    if published:
        paths["published"] = out / "published.csv"
        atomic_write(paths["published"], published_csv(published).encode("utf-8"))
    if chart:
        from tspo_eval.leaderboard.chart import plot_leaderboard

        paths["chart"] = plot_leaderboard(board, out / "leaderboard.png", published)
    return paths


__all__ = ["OVERALL", "to_markdown", "to_csv", "to_json", "write_outputs"]
