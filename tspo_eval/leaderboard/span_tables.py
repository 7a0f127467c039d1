"""Render the selection-only :class:`~tspo_eval.leaderboard.span_hits.SpanBoard` as Markdown, CSV, JSON.

Files: ``span_hits.md``, ``span_hits.csv``, ``span_hits.json`` in the output folder (atomic writes).
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from tspo_eval.atomic_files import atomic_write
from tspo_eval.leaderboard.span_hits import SpanBoard, SpanRow
from tspo_eval.leaderboard.tables import (
    ci_text,
    csv_text,
    fmt,
    fmt_p,
    json_safe,
    md_table,
)

SCHEMA = "tspo-eval/span-hits/v1"
SPAN_FIELDS = [f.name for f in fields(SpanRow)]


def span_markdown(board: SpanBoard) -> str:
    s = board.settings
    conf = round(100 * s["confidence"])
    lines = ["# Selection-only board: chosen frames vs ground-truth time spans", "",
             "hit rate: % of questions with >= 1 chosen frame inside a span; frames in spans: % of all chosen "
             "frames; span recall: % of spans with >= 1 chosen frame. uniform: the same number of frames "
             "evenly spaced on the same 1 fps grid. Δ hit: points, selector − uniform, paired "
             f"{conf}% bootstrap CI ({s['bootstrap']} resamples, seed {s['seed']}); McNemar exact. "
             f"Span tolerance {s['tolerance_s']} s.", ""]
    header = ["selector", "n", "missing", "frames/q", "hit rate % [CI]", "frames in spans %", "span recall %",
              "uniform hit / frames / recall %", "Δ hit pp [CI]", "McNemar b / c", "p"]
    for bench in dict.fromkeys(r.benchmark for r in board.rows):
        rows = [r for r in board.rows if r.benchmark == bench]
        lines += [f"## {bench}", ""]
        lines += md_table(header, [[
            r.selector, str(r.n), str(r.missing), fmt(r.mean_frames), fmt(r.hit_rate) + ci_text(r.hit_low, r.hit_high),
            fmt(r.frame_fraction), fmt(r.span_recall),
            f"{fmt(r.uniform_hit_rate)} / {fmt(r.uniform_frame_fraction)} / {fmt(r.uniform_span_recall)}"
            + (f" (n={r.uniform_n})" if r.uniform_n != r.n else ""),
            fmt(r.delta, True) + ci_text(r.delta_low, r.delta_high, True),
            "" if r.mcnemar_b is None else f"{r.mcnemar_b} / {r.mcnemar_c}", fmt_p(r.p_value)] for r in rows])
        lines.append("")
    if board.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in board.notes] + [""]
    return "\n".join(lines)


def span_csv(board: SpanBoard) -> str:
    return csv_text(SPAN_FIELDS, (row.to_dict() for row in board.rows))


def span_json(board: SpanBoard) -> str:
    data = {"schema": SCHEMA, "settings": board.settings, "rows": [r.to_dict() for r in board.rows],
            "notes": board.notes}
    return json.dumps(json_safe(data), indent=2, ensure_ascii=False) + "\n"


def write_span_outputs(board: SpanBoard, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    paths = {"markdown": out / "span_hits.md", "csv": out / "span_hits.csv", "json": out / "span_hits.json"}
    atomic_write(paths["markdown"], span_markdown(board).encode("utf-8"))
    atomic_write(paths["csv"], span_csv(board).encode("utf-8"))
    atomic_write(paths["json"], span_json(board).encode("utf-8"))
    return paths
