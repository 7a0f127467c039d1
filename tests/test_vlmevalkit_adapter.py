"""The VLMEvalKit adapter's parts that work without VLMEvalKit (which CI cannot install)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tspo_eval.cli import main
from tspo_eval.errors import InputError
from tspo_eval.model_adapters import vlmevalkit_launcher as launcher
from tspo_eval.model_adapters.vlmevalkit_lvbench import (
    VARIANTS,
    ensure_tsv,
    evaluate_prediction_file,
    prompt_for_row,
    record_from_row,
)
from tspo_eval.model_adapters.vlmevalkit_messages import (
    RowFinder,
    fallback_query,
    normalize_message,
    row_question_id,
)
from tspo_eval.model_adapters.vlmevalkit_models import (
    MODEL_SPECS,
    FrameIndexGenerator,
    TspoVideoLLM,
    model_table,
    parse_model_args,
)
from tspo_eval.model_adapters.vlmevalkit_summary import failure_answer


@pytest.fixture
def no_vlmeval(monkeypatch):
    """Make ``import vlmeval`` fail even where VLMEvalKit happens to be installed."""
    monkeypatch.setitem(sys.modules, "vlmeval", None)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    return build_synthetic_benchmark(tmp_path_factory.mktemp("vk_synth"), n_videos=2, questions_per_video=2)


@pytest.fixture(scope="session")
def lvbench_small(tmp_path_factory) -> Path:
    """An LVBench-format annotation (one video per line, ``qa`` list) over synthetic videos."""
    from tspo_eval.testing.vlmeval_standin import build_lvbench_style

    return build_lvbench_style(tmp_path_factory.mktemp("vk_lvb"))[0]


# ---- importability and registration tables -------------------------------------------------------
def test_adapter_imports_without_vlmeval_and_launcher_explains(no_vlmeval, capsys, tmp_path):
    with pytest.raises(InputError, match="not on PyPI.*VLMEvalKit"):
        launcher.require_vlmeval()
    with pytest.raises(InputError, match="VLMEvalKit is not installed"):
        launcher.run_vlmevalkit(["TSPO_FrameIndex"], ["LVBench_64frame"])
    assert main(["vlmevalkit", "--model", "TSPO_FrameIndex", "--data", "LVBench_64frame"]) == 2
    assert "pip install -e VLMEvalKit" in capsys.readouterr().err
    assert main(["vlmevalkit", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in [*MODEL_SPECS, *VARIANTS])
    # --config replaces --model/--data (before or after --); the config is read before VLMEvalKit is needed
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"model": {"TSPO_FrameIndex": {}}, "data": {"LVBench_64frame": {}}}))
    for argv in (["--config", str(config)], ["--", "--config", str(config)]):
        assert main(["vlmevalkit", *argv]) == 2
        assert "pip install -e VLMEvalKit" in capsys.readouterr().err
    assert main(["vlmevalkit"]) == 2
    assert "--config FILE" in capsys.readouterr().err
    assert main(["vlmevalkit", "--config", str(config), "--model", "TSPO_FrameIndex"]) == 2
    assert "either --config or --model/--data" in capsys.readouterr().err


def test_config_files_are_read_as_vlmevalkit_lays_them_out(tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"model": {"TSPO_FrameIndex": {"num_frames": 32},
                                            "MyQwen": {"class": "TspoVideoLLM", "kind": "qwen2_5_vl"}},
                                  "data": {"LVBench_64frame": {}, "LVB16": {"class": "LVBench", "dataset": "LVBench",
                                                                            "nframe": 16}}}))
    models, datasets, shortcuts = launcher.read_config(config)
    assert models == ["TSPO_FrameIndex", "MyQwen"] and datasets == ["LVBench_64frame", "LVB16"]
    assert shortcuts == ["TSPO_FrameIndex"]   # class-less entries must be registered names
    config.write_text(json.dumps({"model": {"TSPO_FrameIndex": {}}}))
    with pytest.raises(InputError, match="'model' and a 'data' object"):
        launcher.read_config(config)
    config.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        launcher.read_config(config)


def test_model_table_is_built_lazily_with_overrides():
    table = model_table({"tspo_path": "/agent", "num_frames": 32, "index_out": "i.jsonl", "selection_log": "s.jsonl"})
    assert set(table) == set(MODEL_SPECS)
    qwen = table["Qwen2.5-VL-7B-Instruct-TSPO"]
    assert qwen.func is TspoVideoLLM and qwen.keywords["kind"] == "qwen2_5_vl"
    assert qwen.keywords["num_frames"] == 32 and qwen.keywords["pretrained"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "index_out" not in qwen.keywords and qwen.keywords["selection_log"] == "s.jsonl"
    assert table["TSPO_FrameIndex"].func is FrameIndexGenerator
    assert table["TSPO_FrameIndex"].keywords["index_out"] == "i.jsonl"
    assert "selection_log" not in table["TSPO_FrameIndex"].keywords
    assert list(model_table(names=["LLaVA-Video-7B-Qwen2-TSPO"])) == ["LLaVA-Video-7B-Qwen2-TSPO"]
    assert parse_model_args("a=1,b=true,c=x/y,d=0.5,e=none") == {"a": 1, "b": True, "c": "x/y", "d": 0.5, "e": None}
    with pytest.raises(InputError, match="key=value"):
        parse_model_args("oops")
    with pytest.raises(InputError, match="unknown model kind"):
        TspoVideoLLM(kind="gpt")


def test_message_helpers_and_question_ids():
    message = normalize_message(["", "/data/v.mp4", "Question?\nA. x"])
    assert [m["type"] for m in message] == ["text", "video", "text"]
    query = fallback_query(message, "LVBench")
    assert query.prompt == "Question?\nA. x" and query.video == "/data/v.mp4" and not query.identified
    assert query.question_id.startswith("LVBench:v:")
    with pytest.raises(InputError, match="no video"):
        fallback_query(normalize_message("text only"), "x")
    assert row_question_id({"id": "86CxyhFV9MI_0", "index": 0}, "LongVideoBench") == "86CxyhFV9MI_0"
    assert row_question_id({"index": 5}, "Video-MME") == "002-3"
    assert row_question_id({"index": 7, "original_index": 5}, "Video-MME") == "002-3"
    assert row_question_id({"index": 5}, "MLVU_MCQ") is None
    assert failure_answer("x\n y").startswith("Failed to obtain answer via API. [tspo-eval: no frames: x y]")


def test_row_finder_uses_video_then_question_text():
    data = pd.DataFrame({"video": ["a", "a", "b.mp4"], "question": ["Red?", "Blue?", "Green?"]})
    finder = RowFinder(data)
    video = {"type": "video", "value": "/v/a.mp4"}
    assert finder.find([video, {"type": "text", "value": "Question: Blue?\nA. x"}]) == 1
    assert finder.find([{"type": "video", "value": "/v/b.mp4"}, {"type": "text", "value": "anything"}]) == 2
    assert finder.find([video, {"type": "text", "value": "neither"}]) is None
    frames = [{"type": "image", "value": "/lmu/images/X/a/frame-1-of-8.jpg"}, {"type": "text", "value": "Red?"}]
    assert finder.find(frames) == 0
    assert finder.find([{"type": "video", "value": "/v/zzz.mp4"}]) is None


def test_videomme_ids_follow_the_row_order(shared_data):
    rows = json.loads((shared_data / "annotations" / "videomme.json").read_text())
    assert all(row_question_id({"index": i}, "Video-MME") == r["question_id"] for i, r in enumerate(rows))


def test_wrapped_qwen_answers_from_tspo_frames(synth_small, tiny_agent_dir, tmp_path_factory, tmp_path):
    from tspo_eval.testing.tiny_vlms import build_tiny_qwen2_5_vl

    annotations, videos = synth_small
    qwen = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("vk_qwen"))
    row = json.loads(annotations.read_text())[1]
    model = TspoVideoLLM(kind="qwen2_5_vl", pretrained=str(qwen), tspo_path=str(tiny_agent_dir), device="cpu",
                         tspo_device="cpu", feature_cache="off", num_frames=4, max_new_tokens=3,
                         selection_log=str(tmp_path / "frames_{task}.jsonl"))
    message = [{"type": "video", "value": str(videos / row["video"]), "question": row["question"],
                "question_id": row["question_id"]}, {"type": "text", "value": row["question"] + "\nA. x\nB. y"}]
    answer = model.generate(message, dataset="TSPO_Synthetic")
    assert isinstance(answer, str) and "Failed to obtain answer" not in answer
    model.frame_source.log.close()
    logged = [json.loads(line) for line in (tmp_path / "frames_TSPO_Synthetic.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in logged] == [row["question_id"]] and len(logged[0]["frame_indices"]) == 4
    assert logged[0]["extra"] == {"frame_source": "tspo"}
    missing = [{"type": "video", "value": str(tmp_path / "gone.mp4")}, {"type": "text", "value": "Q?"}]
    assert model.generate(missing, dataset="TSPO_Synthetic").startswith("Failed to obtain answer via API.")


# ---- the LVBench dataset helpers --------------------------------------------------------------------
def test_lvbench_tsv_rows_prompts_and_scoring(lvbench_small, tmp_path):
    import os

    from tspo_eval.benchmarks import get_benchmark

    tsv = tmp_path / "LVBench.tsv"
    old = os.umask(0o022)
    try:
        ensure_tsv("lvbench", lvbench_small, tsv)
    finally:
        os.umask(old)
    assert tsv.stat().st_mode & 0o777 == 0o644  # as open() would make it, not mkstemp's 0600
    stamp = tsv.stat().st_mtime_ns
    ensure_tsv("lvbench", lvbench_small, tsv)
    assert tsv.stat().st_mtime_ns == stamp  # unchanged content is not rewritten
    table = pd.read_csv(tsv, sep="\t")
    assert list(table["index"]) == list(range(len(table)))
    originals = {r.question_id: r for r in get_benchmark("lvbench").load(lvbench_small)}
    for row in table.to_dict(orient="records"):
        record = record_from_row("lvbench", row)
        original = originals[record.question_id]
        assert (record.options, record.answer, record.categories) == (original.options, original.answer,
                                                                      original.categories)
        assert prompt_for_row("lvbench", row) == get_benchmark("lvbench").format_prompt(original)
        assert "(A) " in prompt_for_row("lvbench", row)
    # predictions: right for the first two questions, unparsable for the third, wrong for the rest
    answers = list(table["answer"])
    wrong = ["B" if a == "A" else "A" for a in answers]
    # the last answer failed (VLMEvalKit's failure message): unanswered, not an unparsed answer
    table["prediction"] = [f"The answer is ({answers[0]})", answers[1], "no idea", *wrong[3:-1],
                           failure_answer("video not found")]
    pred = tmp_path / "model_LVBench_64frame.xlsx"
    table.to_excel(pred, index=False)
    scores = evaluate_prediction_file("lvbench", pred)
    assert scores["correct"] == 2 and scores["unparsed"] == 1 and scores["n"] == len(table)
    assert scores["failed"] == 1
    per_row = pd.read_excel(tmp_path / "model_LVBench_64frame_score.xlsx")  # VLMEvalKit's per-question layout
    assert list(per_row["score"]) == [1, 1] + [0] * (len(table) - 2)
    assert list(per_row["question_id"]) == list(table["question_id"])
    # a question counts in every type it lists
    per_type = scores["breakdowns"]["question_type"]
    for code, stats in per_type.items():
        members = [r for r in originals.values() if code in r.categories["question_type"]]
        assert stats["n"] == len(members)
    assert sum(s["n"] for s in per_type.values()) > len(table)


def test_lvbench_locations_are_checked(monkeypatch, tmp_path):
    from tspo_eval.model_adapters.vlmevalkit_lvbench import locations

    for name in ("TSPO_EVAL_LVBENCH_ANNOTATIONS", "TSPO_EVAL_LVBENCH_VIDEOS"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch restores the original state afterwards
        monkeypatch.delenv(name)
    with pytest.raises(InputError, match="TSPO_EVAL_LVBENCH_ANNOTATIONS"):
        locations("lvbench")
    launcher.set_dataset_locations({"lvbench": (str(tmp_path / "meta.jsonl"), str(tmp_path))})
    with pytest.raises(InputError, match="annotation file not found"):
        locations("lvbench")
