"""Answerer specs (tspo_eval.answering.spec) and the synthetic-reader on real generated needle videos."""
from __future__ import annotations

import numpy as np
import pytest

from tspo_eval.answering import Answerer, AnswerRequest
from tspo_eval.answering.spec import (
    ANSWERER_FACTORIES,
    build_answerer,
    parse_answerer_spec,
)
from tspo_eval.answering.synthetic_reader import UNREADABLE
from tspo_eval.benchmarks import get_benchmark
from tspo_eval.errors import InputError
from tspo_eval.training.rewards import answer_reward, inside_spans


def test_spec_parsing_and_unknown_names() -> None:
    spec = parse_answerer_spec("synthetic-reader")
    assert (spec.name, spec.path, spec.options) == ("synthetic-reader", "", {})
    with pytest.raises(InputError, match="known answerers: .*synthetic-reader"):
        parse_answerer_spec("qwen9:/m,dtype=bf16")
    with pytest.raises(InputError, match="not key=value"):
        parse_answerer_spec("synthetic-reader,oops")
    with pytest.raises(InputError, match="takes no path"):
        build_answerer("synthetic-reader:/some/path")


def test_spec_with_path_and_options_through_the_registry(monkeypatch) -> None:
    seen = []

    class Echo:
        name = "echo"

        def answer(self, requests, batch_size=1):
            return ["A"] * len(requests)

    monkeypatch.setitem(ANSWERER_FACTORIES, "echo", lambda spec: seen.append(spec) or Echo())
    answerer = build_answerer("echo:C:/models/x,dtype=bf16,device=cuda:1")
    assert isinstance(answerer, Answerer)
    assert seen[0].path == "C:/models/x" and seen[0].options == {"dtype": "bf16", "device": "cuda:1"}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    ann, root = build_synthetic_benchmark(tmp_path_factory.mktemp("synth_ans"), n_videos=3, questions_per_video=2,
                                          seconds=20, fps=10.0, seed=3)
    bench = get_benchmark("synthetic")
    return bench, bench.load(ann), root


def test_synthetic_reader_right_only_when_it_sees_the_needles(synthetic) -> None:
    from tspo_eval.video import candidate_grid, decode_frames, open_video

    bench, records, root = synthetic
    reader = build_answerer("synthetic-reader")
    for record in records:
        path = bench.resolve_video(record, root)
        with open_video(path, "pyav") as video:
            meta = video.metadata
        grid = candidate_grid(meta, 1.0)
        frames = decode_frames(path, grid.tolist(), decoder="pyav")
        times = [float(i) / meta.avg_fps for i in grid]
        inside = inside_spans(times, record.time_spans)
        assert inside.any()
        everything = AnswerRequest.multiple_choice(frames, times, meta.duration, record.question, record.options,
                                                   item=record.question_id)
        outside = np.flatnonzero(~inside)
        blind = AnswerRequest.multiple_choice(frames[outside], [times[i] for i in outside], meta.duration,
                                              record.question, record.options, item=record.question_id)
        answers = reader.answer([everything, blind])
        assert answer_reward(answers[0], record.answer, len(record.options)) == 1.0, (record.question_id, answers)
        if record.categories["task_type"] == ["needle_position"]:  # its colour is nowhere else
            assert answers[1] == UNREADABLE


def test_synthetic_reader_frame_colours_are_exact_on_all_frames(synthetic) -> None:
    from tspo_eval.video import decode_frames, open_video

    _bench, records, root = synthetic
    reader = build_answerer("synthetic-reader")
    by_video = {}
    for r in records:
        by_video.setdefault(r.video, []).append(r)
    for video, recs in by_video.items():
        path = root / video
        with open_video(path, "pyav") as reader_handle:
            n, fps = reader_handle.metadata.n_frames, reader_handle.metadata.avg_fps
        frames = decode_frames(path, list(range(n)), decoder="pyav")
        colors = reader.frame_colors(frames)
        for r in recs:
            start, end = r.time_spans[0]
            expected = [i for i in range(n) if start <= i / fps < end]
            assert [i for i, c in enumerate(colors) if c == r.extra["needle_color"]] == expected


def test_synthetic_reader_refuses_questions_it_cannot_read() -> None:
    reader = build_answerer("synthetic-reader")
    request = AnswerRequest.multiple_choice(np.zeros((2, 8, 8, 3), np.uint8), [0.0, 1.0], 2.0, "Why is the man sad?",
                                            ["he lost", "he won"], item="q7")
    with pytest.raises(InputError, match="q7"):
        reader.answer([request])


def test_hf_answerer_specs_check_family_and_options(tmp_path) -> None:
    from tspo_eval.answering.hf_video import HFVideoAnswerer
    from tspo_eval.errors import CheckpointError
    from tspo_eval.testing import build_tiny_qwen2_5_vl

    qwen = build_tiny_qwen2_5_vl(tmp_path / "qwen")
    answerer = build_answerer(f"qwen2_5_vl:{qwen},device=cpu,dtype=fp32,add_time_instruction=true,min_pixels=784,max_pixels=3136")
    assert isinstance(answerer, HFVideoAnswerer) and isinstance(answerer, Answerer)
    assert answerer.add_time_instruction and answerer.max_pixels == 3136
    assert isinstance(build_answerer(f"hf:{qwen},device=cpu"), HFVideoAnswerer)  # any supported family
    with pytest.raises(CheckpointError, match="is a 'qwen2_5_vl' checkpoint; answerer qwen3_vl:.* takes qwen3_vl .*take any supported family"):
        build_answerer(f"qwen3_vl:{qwen}")
    with pytest.raises(InputError, match="unknown options temperature"):
        build_answerer(f"qwen2_5_vl:{qwen},temperature=0.7")
    with pytest.raises(InputError, match="needs a checkpoint"):
        build_answerer("internvl")
    spec = parse_answerer_spec("llava_onevision:/m")
    assert spec.name in ANSWERER_FACTORIES and {"qwen2_5_vl", "qwen3_vl", "internvl", "smolvlm", "hf"} <= set(ANSWERER_FACTORIES)
