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
from tspo_eval.model_adapters.vlmevalkit_models import (
    MODEL_SPECS,
    FrameIndexGenerator,
    TspoVideoLLM,
    model_table,
    normalize_message,
    parse_model_args,
    row_question_id,
    split_message,
)


@pytest.fixture
def no_vlmeval(monkeypatch):
    """Make ``import vlmeval`` fail even where VLMEvalKit happens to be installed."""
    monkeypatch.setitem(sys.modules, "vlmeval", None)


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory):
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    return build_synthetic_benchmark(tmp_path_factory.mktemp("vk_synth"), n_videos=2, questions_per_video=2)


@pytest.fixture(scope="session")
def lvbench_small(synth_small, tmp_path_factory) -> Path:
    """An LVBench-format annotation (one video per line, ``qa`` list) over the synthetic videos."""
    annotations, _ = synth_small
    rows = json.loads(annotations.read_text())
    types = {"needle_color": ["entity recognition"], "needle_position": ["temporal grounding", "reasoning"]}
    by_video: dict[str, list] = {}
    for r in rows:
        by_video.setdefault(r["video"], []).append(r)
    path = tmp_path_factory.mktemp("vk_lvb") / "video_info.meta.jsonl"
    with path.open("w") as handle:
        for n, (video, qs) in enumerate(sorted(by_video.items())):
            qa = [{"uid": str(10 * n + i), "answer": r["answer"], "question_type": types[r["task_type"]],
                   "question": r["question"] + "\n" + "\n".join(f"({'ABCD'[j]}) {o}" for j, o in enumerate(r["options"])),
                   "time_reference": "00:01-00:05"} for i, r in enumerate(qs)]
            handle.write(json.dumps({"key": video[:-4], "type": "synthetic",
                                     "video_info": {"duration_minutes": 0.33, "fps": 10.0}, "qa": qa}) + "\n")
    return path


# ---- importability and registration tables -------------------------------------------------------
def test_adapter_imports_without_vlmeval_and_launcher_explains(no_vlmeval, capsys):
    with pytest.raises(InputError, match="not on PyPI.*VLMEvalKit"):
        launcher.require_vlmeval()
    with pytest.raises(InputError, match="VLMEvalKit is not installed"):
        launcher.run_vlmevalkit(["TSPO_FrameIndex"], ["LVBench_64frame"])
    assert main(["vlmevalkit", "--model", "TSPO_FrameIndex", "--data", "LVBench_64frame"]) == 2
    assert "pip install -e VLMEvalKit" in capsys.readouterr().err
    assert main(["vlmevalkit", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in [*MODEL_SPECS, *VARIANTS])


def test_model_table_is_built_lazily_with_overrides():
    table = model_table({"tspo_path": "/agent", "num_frames": 32})
    assert set(table) == set(MODEL_SPECS)
    qwen = table["Qwen2.5-VL-7B-Instruct-TSPO"]
    assert qwen.func is TspoVideoLLM and qwen.keywords["kind"] == "qwen2_5_vl"
    assert qwen.keywords["num_frames"] == 32 and qwen.keywords["pretrained"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert table["TSPO_FrameIndex"].func is FrameIndexGenerator
    assert list(model_table(names=["LLaVA-Video-7B-Qwen2-TSPO"])) == ["LLaVA-Video-7B-Qwen2-TSPO"]
    assert parse_model_args("a=1,b=true,c=x/y,d=0.5,e=none") == {"a": 1, "b": True, "c": "x/y", "d": 0.5, "e": None}
    with pytest.raises(InputError, match="key=value"):
        parse_model_args("oops")
    with pytest.raises(InputError, match="unknown model kind"):
        TspoVideoLLM(kind="gpt")


def test_message_helpers_and_question_ids():
    message = normalize_message(["", "/data/v.mp4", "Question?\nA. x"])
    assert [m["type"] for m in message] == ["text", "video", "text"]
    prompt, video = split_message(message)
    assert prompt == "Question?\nA. x" and video["value"] == "/data/v.mp4"
    with pytest.raises(InputError, match="exactly one video"):
        split_message(normalize_message("text only"))
    assert row_question_id({"id": "86CxyhFV9MI_0", "index": 0}, "LongVideoBench") == "86CxyhFV9MI_0"
    assert row_question_id({"index": 5}, "Video-MME") == "002-3"
    assert row_question_id({"index": 5}, "MLVU_MCQ") is None


def test_videomme_ids_follow_the_row_order(shared_data):
    rows = json.loads((shared_data / "annotations" / "videomme.json").read_text())
    assert all(row_question_id({"index": i}, "Video-MME") == r["question_id"] for i, r in enumerate(rows))


# ---- the models -------------------------------------------------------------------------------------
class FakeDataset:
    """The part of a VLMEvalKit video dataset a model's build_prompt touches."""

    dataset_name = "TSPO_Synthetic"

    def __init__(self, video: str) -> None:
        self.video = video

    def build_prompt(self, line, video_llm):
        line["question"] += "\nA. red\nB. blue"  # as VLMEvalKit's LongVideoBench does, in place
        return [{"type": "text", "value": ""}, {"type": "video", "value": self.video},
                {"type": "text", "value": line["question"] + "\nAnswer with the letter."}]


def test_frame_index_generator_writes_records(synth_small, tiny_agent_dir, tmp_path):
    from tspo_eval.frame_index_cache.index_store import IndexRecord, read_index

    annotations, videos = synth_small
    row = json.loads(annotations.read_text())[0]
    model = FrameIndexGenerator(tspo_path=str(tiny_agent_dir), device="cpu", feature_cache="off",
                                index_out=str(tmp_path / "idx_{task}.jsonl"))
    assert model.VIDEO_LLM and not model.use_custom_prompt("TSPO_Synthetic")
    model.nframe = 6  # VLMEvalKit passes the dataset's frame count
    assert model.use_custom_prompt("TSPO_Synthetic") and model.num_frames == 6
    line = pd.Series({"question": row["question"], "question_id": row["question_id"], "index": 0})
    message = model.build_prompt(line, dataset=FakeDataset(str(videos / row["video"])), video_llm=True)
    assert line["question"] == row["question"]  # the dataset edited a copy
    assert message[1]["question"] == row["question"] and message[1]["question_id"] == row["question_id"]
    record = IndexRecord.from_dict(json.loads(model.generate(message, dataset="TSPO_Synthetic")))
    assert record.question_id == row["question_id"] and len(record.frame_indices) == 6
    assert record.benchmark == "synthetic" and record.strategy == "topk"
    model.log.close()
    assert read_index(tmp_path / "idx_TSPO_Synthetic.jsonl")[row["question_id"]] == record
    model.nframe = None  # an fps dataset: no custom prompt, K unchanged
    assert not model.use_custom_prompt("x") and model.num_frames == 6
    assert model.generate([{"type": "video", "value": str(tmp_path / "none.mp4")}, {"type": "text", "value": "Q?"}],
                          dataset="TSPO_Synthetic").startswith("ERROR:")


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
    assert isinstance(answer, str)
    model.frame_source.log.close()
    logged = [json.loads(line) for line in (tmp_path / "frames_TSPO_Synthetic.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in logged] == [row["question_id"]] and len(logged[0]["frame_indices"]) == 4
    missing = [{"type": "video", "value": str(tmp_path / "gone.mp4")}, {"type": "text", "value": "Q?"}]
    assert model.generate(missing, dataset="TSPO_Synthetic") == ""  # no frames: empty answer, run goes on


# ---- the LVBench dataset helpers --------------------------------------------------------------------
def test_lvbench_tsv_rows_prompts_and_scoring(lvbench_small, tmp_path):
    from tspo_eval.benchmarks import get_benchmark

    tsv = tmp_path / "LVBench.tsv"
    ensure_tsv("lvbench", lvbench_small, tsv)
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
    table["prediction"] = [f"The answer is ({answers[0]})", answers[1], "no idea", *wrong[3:]]
    pred = tmp_path / "model_LVBench_64frame.xlsx"
    table.to_excel(pred, index=False)
    scores = evaluate_prediction_file("lvbench", pred)
    assert scores["correct"] == 2 and scores["unparsed"] == 1 and scores["n"] == len(table)
    assert json.loads((tmp_path / "model_LVBench_64frame_score.json").read_text()) == scores
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
