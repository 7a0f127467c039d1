"""``tspo-eval leaderboard`` end to end: run folders in, Markdown / CSV / JSON / PNG out."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tspo_eval.cli import main
from tspo_eval.frame_index_cache.index_store import IndexRecord, write_index
from tspo_eval.leaderboard.synthetic_runs import write_lmms_eval_run

UNIFORM = {f"s{i}": i % 3 == 0 for i in range(6)}


def _annotation(path: Path) -> Path:
    rows = [{"question_id": f"s{i}", "video": "v.mp4", "question": f"needle {i}?", "options": ["a", "b", "c", "d"],
             "answer": "ABCD"[i % 4], "duration": 20.0, "task_type": "colour" if i < 3 else "order",
             "time_spans": [[2.0 + i, 4.0 + i]]} for i in range(6)]
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    ann = _annotation(root / "synthetic.json")
    runs = root / "lmms_out"
    write_lmms_eval_run(runs, "tspo_synthetic", {"pretrained": "m", "frame_selection": "uniform", "num_frames": 8},
                        UNIFORM)
    # predictions right on s0..s4, s5 unanswered, scored by 'tspo-eval score --json --per-question'
    preds = root / "preds.jsonl"
    preds.write_text("".join(json.dumps({"qid": f"s{i}", "prediction": f"The answer is {'ABCD'[i % 4]}."}) + "\n"
                             for i in range(5)))
    return {"root": root, "ann": ann, "runs": runs, "preds": preds}


def _score_json(case, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    capsys.readouterr()
    assert main(["score", "synthetic", str(case["ann"]), str(case["preds"]), "--json", *extra]) == 0
    path = case["root"] / f"score{len(extra)}.json"
    path.write_text(capsys.readouterr().out)
    return path


def test_cli_compares_runs_across_hosts(case, capsys: pytest.CaptureFixture[str]) -> None:
    out = case["root"] / "board"
    score = _score_json(case, capsys, "--per-question")
    status = main(["leaderboard", str(case["runs"]), f"mine={score}", "--run-info", "mine",
                   "model=m,source=tspo,frames=8", "--annotations", f"synthetic={case['ann']}",
                   "--out", str(out), "--bootstrap", "200", "--seed", "4"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "## synthetic" in printed and "| mine | m | tspo | 8 | 5 |" in printed
    data = json.loads((out / "leaderboard.json").read_text())
    overall = {r["run"]: r for r in data["rows"] if r["breakdown"] == "overall"}
    mine = overall["mine"]
    assert mine["baseline"] == "uniform-8" and (mine["n_paired"], mine["only_run"], mine["only_baseline"]) == (5, 0, 1)
    paired_base = [UNIFORM[f"s{i}"] for i in range(5)]
    assert mine["delta"] == pytest.approx(100 * (1 - sum(paired_base) / 5))
    # the score output has no categories: they come from the annotation
    assert {r["value"] for r in data["rows"] if r["run"] == "mine" and r["breakdown"] == "task_type"} == {"colour", "order"}
    assert {p.name for p in out.iterdir()} == {"leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png"}


def test_cli_refuses_score_summary_without_verdicts(case, capsys: pytest.CaptureFixture[str]) -> None:
    summary = _score_json(case, capsys)
    assert main(["leaderboard", str(summary), "--out", str(case["root"] / "y")]) == 2
    assert "--per-question" in capsys.readouterr().err


def test_cli_published_and_no_chart(case, capsys: pytest.CaptureFixture[str]) -> None:
    out = case["root"] / "board2"
    assert main(["leaderboard", str(case["runs"]), "--out", str(out), "--bootstrap", "20", "--no-chart",
                 "--published"]) == 0
    # the synthetic benchmark has no published numbers: no reference section, no published.csv
    assert not (out / "leaderboard.png").exists() and not (out / "published.csv").exists()
    assert "Reference" not in capsys.readouterr().out


def test_cli_selection_only(case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = [IndexRecord(benchmark="synthetic", question_id=f"s{i}", video="v.mp4", n_frames=200, avg_fps=10.0,
                         candidate_stride=10, frame_indices=[(3 + i) * 10], timestamps=[3.0 + i], strategy="topk",
                         scorer="clip", agent_fingerprint="", clip_fingerprint="c") for i in range(6)]
    path = write_index(tmp_path / "clip.jsonl", index)
    status = main(["leaderboard", "--selection-only", f"clip-1={path}", "--annotations", f"synthetic={case['ann']}",
                   "--out", str(tmp_path / "spans"), "--bootstrap", "50"])
    assert status == 0
    assert "| clip-1 | 6 | 0 | 1.0 | 100.0" in capsys.readouterr().out
    data = json.loads((tmp_path / "spans" / "span_hits.json").read_text())
    assert data["rows"][0]["hit_rate"] == 100.0 and data["rows"][0]["span_recall"] == 100.0


@pytest.mark.parametrize("argv,message", [
    (["leaderboard", "/nonexistent/run"], "run not found"),
    (["leaderboard", "x", "--selection-only", "--published"], "do not apply"),
    (["leaderboard", "x", "--bootstrap", "0"], "--bootstrap"),
    (["leaderboard", "x", "--annotations", "synthetic"], "BENCH=FILE"),
])
def test_cli_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_run_info(case, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", f"a={case['runs']}", "--run-info", "a", "colour=red", "--out",
                 str(case["root"] / "x")]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
