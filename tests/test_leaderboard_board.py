"""Leaderboard rows from lmms-eval run folders (written by lmms-eval's own EvaluationTracker) with
known per-question outcomes: deltas, alignment with missing questions, breakdowns, baselines,
and consistent Markdown / CSV / JSON / PNG outputs."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tspo_eval.leaderboard.board import MACRO, OVERALL, build_leaderboard
from tspo_eval.leaderboard.runs import load_all
from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run
from tspo_eval.leaderboard.tables import fmt, fmt_p, write_outputs

MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
OTHER = "llava-hf/LLaVA-Video-7B-Qwen2-hf"
# q9 only in the uniform run, q10 only in the TSPO run
UNIFORM = {"q0": True, "q1": False, "q2": False, "q3": True, "q4": False,
           "q5": True, "q6": False, "q7": False, "q8": True, "q9": True}
TSPO = {"q0": True, "q1": True, "q2": True, "q3": False, "q4": True,
        "q5": True, "q6": False, "q7": True, "q8": True, "q10": False}
CLIP = {f"q{i}": i % 3 == 0 for i in range(10)}
TSPO32 = {f"q{i}": i % 2 == 0 for i in range(10)}
OTHER_UNIFORM = {f"q{i}": True for i in range(10)}
N_BOOT, SEED = 500, 3


def _types(qid: str) -> dict[str, list[str]]:
    i = int(qid[1:])
    return {"question_type": ["ER"] if i % 2 == 0 else ["ER", "KIR"]}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lmms_out")
    specs = [
        (MODEL, {"frame_selection": "uniform", "num_frames": 64}, UNIFORM, "20260101_100000"),
        (MODEL, {"frame_selection": "tspo", "num_frames": 64}, TSPO, "20260101_110000"),
        (MODEL, {"frame_selection": "tspo", "scorer": "clip", "num_frames": 64}, CLIP, "20260101_120000"),
        (MODEL, {"frame_selection": "tspo", "num_frames": 32}, TSPO32, "20260101_130000"),
        (OTHER, {"frame_selection": "uniform", "num_frames": 64}, OTHER_UNIFORM, "20260101_140000"),
    ]
    for model, args, outcomes, date in specs:
        cats = {q: _types(q) for q in outcomes}
        write_lmms_eval_run(root, "tspo_lvbench", {"pretrained": model, **args}, outcomes, cats, datetime_str=date)
    return root


@pytest.fixture(scope="module")
def board(runs_root: Path):
    return build_leaderboard(load_all([str(runs_root)]), n_boot=N_BOOT, seed=SEED)


def _row(board, run: str, breakdown: str = OVERALL, value: str = ""):
    matches = [r for r in board.rows if r.run == run and r.breakdown == breakdown and r.value == value]
    assert len(matches) == 1, [(r.run, r.breakdown, r.value) for r in board.rows]
    return matches[0]


def test_runs_are_labelled_from_model_args(board) -> None:
    labels = {(r.model, r.frame_source, r.num_frames): r.name for r in board.runs}
    assert labels[(MODEL, "uniform", 64)] == f"{MODEL}:uniform-64"   # clashes with the other model's name
    assert labels[(MODEL, "tspo", 64)] == "tspo-64"
    assert labels[(MODEL, "clip", 64)] == "clip-64"
    assert labels[(MODEL, "tspo", 32)] == "tspo-32"
    assert labels[(OTHER, "uniform", 64)] == f"{OTHER}:uniform-64"
    assert {r.benchmark for r in board.runs} == {"lvbench"}


def test_delta_and_alignment_with_missing_questions(board) -> None:
    row = _row(board, "tspo-64")
    assert row.baseline == f"{MODEL}:uniform-64"       # same model and frame budget, not the other model
    paired = [q for q in TSPO if q in UNIFORM]
    a = np.array([TSPO[q] for q in paired])
    b = np.array([UNIFORM[q] for q in paired])
    assert (row.n, row.n_paired, row.only_run, row.only_baseline) == (10, 9, 1, 1)
    assert row.accuracy == pytest.approx(100 * sum(TSPO.values()) / len(TSPO))
    assert row.accuracy_paired == pytest.approx(100 * a.mean())
    assert row.baseline_accuracy_paired == pytest.approx(100 * b.mean())
    assert row.delta == pytest.approx(100 * (a.mean() - b.mean()))
    # b: q1 q2 q4 q7, c: q3 -> two-sided exact p = 2 * (1 + 5) / 2**5
    assert (row.mcnemar_b, row.mcnemar_c) == (4, 1)
    assert row.p_value == pytest.approx(12 / 32)
    # interval: the documented bootstrap on the paired questions in the run's order
    idx = np.random.default_rng(SEED).integers(0, len(paired), size=(N_BOOT, len(paired)))
    low, high = np.percentile(a[idx].mean(axis=1) - b[idx].mean(axis=1), [2.5, 97.5])
    assert (row.delta_low, row.delta_high) == pytest.approx((100 * low, 100 * high))


def test_baseline_roles_and_missing_baseline_note(board) -> None:
    assert _row(board, f"{MODEL}:uniform-64").role == "baseline"
    assert _row(board, "clip-64").baseline == f"{MODEL}:uniform-64"
    no_base = _row(board, "tspo-32")
    assert no_base.role == "no-baseline" and no_base.baseline is None and math.isnan(no_base.delta)
    assert any("tspo-32" in note and "no uniform run" in note for note in board.notes)
    assert _row(board, f"{OTHER}:uniform-64").baseline is None


def test_breakdown_rows_count_multi_valued_categories(board) -> None:
    kir = _row(board, "tspo-64", "question_type", "KIR")
    kir_run = [q for q in TSPO if int(q[1:]) % 2 == 1]
    kir_base = [q for q in UNIFORM if int(q[1:]) % 2 == 1]
    paired = [q for q in kir_run if q in kir_base]
    assert kir.n == len(kir_run) and kir.only_baseline == 1 and kir.only_run == 0
    assert kir.accuracy == pytest.approx(100 * np.mean([TSPO[q] for q in kir_run]))
    assert kir.delta == pytest.approx(100 * (np.mean([TSPO[q] for q in paired]) - np.mean([UNIFORM[q] for q in paired])))
    er = _row(board, "tspo-64", "question_type", "ER")
    assert er.n == len(TSPO)          # every question lists ER
    assert board.breakdowns["lvbench"] == ["question_type"]


def test_explicit_baseline_overrides_the_rule(runs_root: Path) -> None:
    runs = load_all([str(runs_root)])
    board = build_leaderboard(runs, baseline="clip-64", n_boot=50, seed=0)
    assert _row(board, "tspo-64").baseline == "clip-64"
    assert _row(board, "tspo-32").baseline == "clip-64"
    assert _row(board, "clip-64").role == "baseline" and _row(board, "clip-64").baseline is None


def test_mlvu_macro_row(tmp_path: Path) -> None:
    tasks = {f"m{i}": ("needle" if i < 4 else "count") for i in range(10)}
    uni = {q: i % 2 == 0 for i, q in enumerate(tasks)}
    sel = {q: i < 7 for i, q in enumerate(tasks)}
    cats = {q: {"task_type": t} for q, t in tasks.items()}
    for args, outcomes, date in (({"frame_selection": "uniform"}, uni, "20260101_000001"),
                                 ({"frame_selection": "tspo"}, sel, "20260101_000002")):
        write_lmms_eval_run(tmp_path, "tspo_mlvu", {"pretrained": MODEL, "num_frames": 16, **args}, outcomes, cats,
                            datetime_str=date)
    board = build_leaderboard(load_all([str(tmp_path)]), n_boot=50, seed=0)
    macro = _row(board, "tspo-16", MACRO, "task_type")
    per_type = [np.mean([sel[q] for q in tasks if tasks[q] == t]) for t in ("count", "needle")]
    base_types = [np.mean([uni[q] for q in tasks if tasks[q] == t]) for t in ("count", "needle")]
    assert macro.accuracy == pytest.approx(100 * np.mean(per_type))
    assert macro.delta == pytest.approx(100 * (np.mean(per_type) - np.mean(base_types)))


# ---- outputs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def outputs(board, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tspo_eval.leaderboard.published import published_results

    return write_outputs(board, tmp_path_factory.mktemp("board_out"), published_results(board.benchmarks))


def _markdown_overall(md: str) -> dict[str, list[str]]:
    section = md.split("## lvbench", 1)[1].split("###", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("| ") and not l.startswith("| run ")]
    return {cells[0]: cells for cells in ([c.strip() for c in l.strip("|").split("|")] for l in lines)}


def test_markdown_csv_json_agree(board, outputs) -> None:
    data = json.loads(outputs["json"].read_text())
    rows_csv = list(csv.DictReader(io.StringIO(outputs["csv"].read_text())))
    md = _markdown_overall(outputs["markdown"].read_text())
    assert len(data["rows"]) == len(rows_csv) == len(board.rows)
    for j, c in zip(data["rows"], rows_csv):
        assert (j["run"], j["breakdown"], j["value"]) == (c["run"], c["breakdown"], c["value"])
        assert float(c["accuracy"]) == pytest.approx(j["accuracy"], abs=1e-4)
        if j["delta"] is not None:
            assert float(c["delta"]) == pytest.approx(j["delta"], abs=1e-4)
            assert int(c["mcnemar_b"]) == j["mcnemar_b"] and float(c["p_value"]) == pytest.approx(j["p_value"], abs=1e-4)
        else:
            assert c["delta"] == ""
        if j["breakdown"] == OVERALL:
            cells = md[j["run"]]
            assert cells[4] == str(j["n"])
            assert cells[5] == f"{fmt(j['accuracy'])} [{fmt(j['accuracy_low'])}, {fmt(j['accuracy_high'])}]"
            if j["delta"] is not None:
                assert cells[9] == f"{fmt(j['delta'], True)} [{fmt(j['delta_low'], True)}, {fmt(j['delta_high'], True)}]"
                assert cells[10] == f"{j['mcnemar_b']} / {j['mcnemar_c']}" and cells[11] == fmt_p(j["p_value"])
                assert cells[8] == f"{j['only_run']} / {j['only_baseline']}"
    assert data["settings"] == {"bootstrap": N_BOOT, "seed": SEED, "confidence": 0.95, "baseline": None}


def test_published_rows_are_labelled_and_separate(outputs) -> None:
    md = outputs["markdown"].read_text()
    measured, reference = md.split("## Reference: TSPO paper, Table 1", 1)
    assert "45.3" not in measured and "46.4" in reference and "not measured" in reference
    rows_csv = list(csv.DictReader(io.StringIO(outputs["csv"].read_text())))
    assert not any(r["model"] in ("LLaVA-Video-7B", "Qwen2.5-VL-7B") for r in rows_csv)
    assert "published" not in outputs["csv"].read_text()
    published = list(csv.DictReader(io.StringIO(outputs["published"].read_text())))
    assert {p["kind"] for p in published} == {"published"} and {p["benchmark"] for p in published} == {"lvbench"}
    assert {(p["model"], p["frame_source"], p["accuracy"]) for p in published} >= {("Qwen2.5-VL-7B", "tspo", "46.4")}
    data = json.loads(outputs["json"].read_text())
    assert all(r["run"] != "Qwen2.5-VL-7B" for r in data["rows"])
    assert data["published"]["source"].startswith("TSPO paper") and len(data["published"]["rows"]) == 4


def test_chart_is_a_valid_png(outputs) -> None:
    from PIL import Image

    path = outputs["chart"]
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 10_000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20     # bars, text, error bars: not blank
