"""Training runs on CPU: it learns (held-out), the toy example, exact resume, checkpoints, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tspo_eval.errors import InputError
from tspo_eval.selector_options import SelectorOptions
from tspo_eval.training import TrainOptions
from tspo_eval.training.trainer import train


@pytest.fixture(scope="module")
def needle_sets(tmp_path_factory):
    """A generated needle benchmark to train on and a held-out one (other seed, other videos)."""
    from tspo_eval.testing.synthetic_benchmark import build_synthetic_benchmark

    root = tmp_path_factory.mktemp("needles")
    train_ann, train_videos = build_synthetic_benchmark(root / "train", n_videos=8, questions_per_video=1,
                                                        seconds=40, fps=4.0, seed=1)
    held_ann, held_videos = build_synthetic_benchmark(root / "held", n_videos=6, questions_per_video=1,
                                                      seconds=40, fps=4.0, seed=2)
    return root, (train_ann, train_videos), (held_ann, held_videos)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from tspo_eval.training.toy import build_toy_example

    return build_toy_example(tmp_path_factory.mktemp("toy"))


def _selector(tiny_agent_dir, cache) -> SelectorOptions:
    return SelectorOptions(agent=str(tiny_agent_dir), decoder="pyav", cache_dir=str(cache))


def _options(tiny_agent_dir, ann, videos, out, cache, **kw) -> TrainOptions:
    values = {"selector": _selector(tiny_agent_dir, cache), "prompts_per_step": 4, "group_size": 8, "num_frames": 4,
              "save_every": 10, "progress": False}
    values.update(kw)
    return TrainOptions("synthetic", str(ann), str(videos), "synthetic-reader", str(out), **values)


def _hit_rate(agent_dir, ann, videos, k: int) -> tuple[float, float]:
    """(agent top-K hit rate, uniform hit rate) on a benchmark, through the package's selection path."""
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.benchmarks import get_benchmark
    from tspo_eval.leaderboard.span_hits import summarize
    from tspo_eval.selection import FrameSelector, uniform_selection

    bench = get_benchmark("synthetic")
    records = bench.load(ann)
    selector = FrameSelector(TemporalAgent.from_pretrained(agent_dir, device="cpu"), cache=False, decoder="pyav")
    spans = {r.question_id: r.time_spans for r in records}
    agent_times, uniform_times = {}, {}
    for r in records:
        path = bench.resolve_video(r, videos)
        agent_times[r.question_id] = selector.select(path, r.question, num_frames=k).timestamps
        uniform_times[r.question_id] = uniform_selection(path, num_frames=k, decoder="pyav").timestamps
    return summarize(agent_times, spans).hit_rate, summarize(uniform_times, spans).hit_rate


def test_it_learns_on_held_out_needles(tiny_agent_dir, needle_sets, tmp_path) -> None:
    _root, (ann, videos), (held_ann, held_videos) = needle_sets
    out = tmp_path / "run"
    result = train(_options(tiny_agent_dir, ann, videos, out, tmp_path / "cache", steps=30,
                            eval=f"synthetic={held_ann}:{held_videos}"))
    before, uniform = _hit_rate(tiny_agent_dir, held_ann, held_videos, 4)
    after, _ = _hit_rate(out, held_ann, held_videos, 4)
    assert after >= before + 0.5 and after > uniform, (before, after, uniform)
    assert result.metrics[-1]["r_a"] > result.metrics[0]["r_a"]
    # what a user watches
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "loss" in m]
    assert [m["step"] for m in steps] == list(range(1, 31))
    for key in ("loss", "reward_mean", "reward_std", "r_a", "r_t", "tau", "lr", "grad_norm", "zero_grad_share",
                "span_frame_share", "seconds_decode", "seconds_answerer", "seconds_head"):
        assert key in steps[0]
    assert steps[0]["tau"] == pytest.approx(0.025) and steps[-1]["tau"] == pytest.approx(0.025 - 0.015 * 29 / 30)
    assert steps[0]["lr"] == pytest.approx(5e-4) and steps[-1]["lr"] == pytest.approx(5e-4 / 30)
    evals = [m for m in lines if "eval_hit_rate" in m]
    assert [m["step"] for m in evals] == [0, 10, 20, 30] and evals[0]["uniform_hit_rate"] == pytest.approx(uniform)
    assert evals[-1]["eval_hit_rate"] == pytest.approx(after)
    assert (out / "best").is_dir() and (out / "step-10").is_dir() and (out / "step-30").is_dir()
    assert (out / "curves.png").stat().st_size > 1000


def _learned_toy(out: Path, video_dir: Path, metrics) -> bool:
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.selection import FrameSelector
    from tspo_eval.training.toy import QUESTION

    selector = FrameSelector(TemporalAgent.from_pretrained(out, device="cpu"), cache=False, decoder="pyav")
    result = selector.select(video_dir / "toy.mp4", QUESTION, num_frames=6)
    peak = int(np.argmax(result.scores))
    return metrics[-1]["r_a"] == 1.0 and peak <= 1  # the red segment covers candidates 0 and 1


def _toy_run(tiny_agent_dir, toy, out, cache, seed, tau0, mode):
    ann, videos = toy
    options = TrainOptions("tspo10k", str(ann), str(videos), "synthetic-reader", str(out),
                           selector=_selector(tiny_agent_dir, cache), steps=10, prompts_per_step=1, group_size=12,
                           num_frames=6, tau0=tau0, off_policy=mode, seed=seed, save_every=10, progress=False)
    return train(options)


def test_toy_example_learns_for_most_seeds_at_tau0_0_1(tiny_agent_dir, toy, tmp_path) -> None:
    learned = 0
    for seed in range(5):
        result = _toy_run(tiny_agent_dir, toy, tmp_path / f"s{seed}", tmp_path / "cache", seed, 0.1, "none")
        assert result.metrics[0]["r_a"] < 0.5
        learned += _learned_toy(tmp_path / f"s{seed}", toy[1], result.metrics)
    assert learned >= 3


def test_toy_example_off_policy_shaping_learns_at_tau0_0_025(tiny_agent_dir, toy, tmp_path) -> None:
    plain, shaped = 0, 0
    for seed in range(3):
        result = _toy_run(tiny_agent_dir, toy, tmp_path / f"n{seed}", tmp_path / "cache", seed, 0.025, "none")
        plain += _learned_toy(tmp_path / f"n{seed}", toy[1], result.metrics)
        result = _toy_run(tiny_agent_dir, toy, tmp_path / f"o{seed}", tmp_path / "cache", seed, 0.025, "shaping")
        shaped += _learned_toy(tmp_path / f"o{seed}", toy[1], result.metrics)
        assert result.metrics[0]["zero_grad_share"] == 0.0  # the oracle gives every group a gradient
    assert shaped == 3 and shaped >= plain


def test_resume_is_bitwise_and_checks_settings(tiny_agent_dir, needle_sets, tmp_path) -> None:
    from safetensors.torch import load_file

    _root, (ann, videos), _ = needle_sets
    cache = tmp_path / "cache"
    kw = {"steps": 6, "save_every": 2, "logprob": "plackett-luce", "off_policy": "anchor"}
    train(_options(tiny_agent_dir, ann, videos, tmp_path / "full", cache, **kw))

    def stop_at_3(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_options(tiny_agent_dir, ann, videos, tmp_path / "cut", cache, **kw), on_step=stop_at_3)
    with pytest.raises(InputError, match="already holds a training run"):
        train(_options(tiny_agent_dir, ann, videos, tmp_path / "cut", cache, **kw))
    with pytest.raises(InputError, match="other settings.*lr"):
        train(_options(tiny_agent_dir, ann, videos, tmp_path / "cut", cache, **{**kw, "lr": 1e-3}, resume=True))
    train(_options(tiny_agent_dir, ann, videos, tmp_path / "cut", cache, **kw, resume=True))
    full = load_file(str(tmp_path / "full" / "selector.safetensors"))
    cut = load_file(str(tmp_path / "cut" / "selector.safetensors"))
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    initial = load_file(str(tiny_agent_dir / "model.safetensors"))
    assert not torch.equal(full["selector.mlp.0.weight"], initial["selector.mlp.0.weight"])
    assert torch.equal(full["selector.temporal.ffn_o.weight"], initial["selector.temporal.ffn_o.weight"])
    strip = lambda path: [{k: v for k, v in json.loads(l).items() if not k.startswith("seconds")}
                          for l in path.read_text().splitlines()]
    assert strip(tmp_path / "full" / "metrics.jsonl") == strip(tmp_path / "cut" / "metrics.jsonl")


def test_checkpoint_serves_every_command(tiny_agent_dir, needle_sets, tmp_path, capsys) -> None:
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.cli import main

    _root, (ann, videos), _ = needle_sets
    out = tmp_path / "run"
    status = main(["train", "synthetic", str(ann), "--videos", str(videos), "--answerer", "synthetic-reader",
                   "--out", str(out), "--init", str(tiny_agent_dir), "--steps", "2", "--prompts-per-step", "2",
                   "--group-size", "4", "--num-frames", "4", "--decoder", "pyav", "--cache-dir", str(tmp_path / "c"),
                   "--save-every", "1"])
    assert status == 0 and "trained 2 steps" in capsys.readouterr().out
    agent = TemporalAgent.from_pretrained(out, device="cpu")
    assert agent.encoder_fingerprint == TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu").encoder_fingerprint
    assert TemporalAgent.from_pretrained(out / "step-1", device="cpu").fingerprint != agent.fingerprint
    video = min(Path(videos).glob("*.mp4"))
    assert main(["select", str(video), "-q", "What colour?", "--agent", str(out), "--json", "--decoder", "pyav",
                 "--no-cache", "-k", "4"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frame_indices"]) == 4
    from transformers import CLIPModel

    assert CLIPModel.from_pretrained(str(out)).config.projection_dim == 768  # plain transformers loads it too


def _cli(args, capsys) -> tuple[int, str]:
    from tspo_eval.cli import main

    status = main(args)
    return status, capsys.readouterr().err


def test_bad_input_is_one_line_exit_2(tiny_agent_dir, needle_sets, tmp_path, capsys) -> None:
    _root, (ann, videos), _ = needle_sets
    base = ["train", "synthetic", str(ann), "--videos", str(videos), "--out", str(tmp_path / "o"), "--init",
            str(tiny_agent_dir), "--decoder", "pyav", "--cache-dir", str(tmp_path / "c"), "--steps", "1"]
    status, err = _cli(base + ["--answerer", "gpt9:/x"], capsys)
    assert status == 2 and "unknown answerer 'gpt9'" in err and "synthetic-reader" in err
    status, err = _cli(base + ["--answerer", "synthetic-reader", "--num-frames", "500"], capsys)
    assert status == 2 and "--num-frames 500 is above the candidate count" in err
    missing = tmp_path / "novideos"
    missing.mkdir()
    bad = base[:3] + ["--videos", str(missing)] + base[5:]
    status, err = _cli(bad + ["--answerer", "synthetic-reader"], capsys)
    assert status == 2 and "empty training set" in err
    failures = [json.loads(l) for l in (tmp_path / "o" / "failures.jsonl").read_text().splitlines()] \
        if (tmp_path / "o" / "failures.jsonl").exists() else []
    assert failures == []  # nothing written before the run starts
    status, err = _cli(["train", "nosuchbench", str(ann), "--videos", str(videos), "--out", str(tmp_path / "o2"),
                        "--answerer", "synthetic-reader"], capsys)
    assert status == 2 and "tspo10k" in err
    status, err = _cli(base + ["--answerer", "synthetic-reader", "--resume"], capsys)
    assert status == 2 and "holds no trainer state" in err


def test_missing_video_is_skipped_and_named(tiny_agent_dir, needle_sets, tmp_path) -> None:
    _root, (ann, videos), _ = needle_sets
    rows = json.loads(Path(ann).read_text())
    rows.append({**rows[0], "question_id": "ghost_q0", "video": "ghost.mp4"})
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows))
    out = tmp_path / "run"
    result = train(_options(tiny_agent_dir, broken, videos, out, tmp_path / "cache", steps=1))
    failures = [json.loads(l) for l in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["question_id"] for f in failures] == ["ghost_q0"] and "ghost.mp4" in failures[0]["reason"]
    assert result.failures == 1


def test_needle_composites_from_cached_features(tiny_agent_dir, needle_sets, tmp_path) -> None:
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.frame_index_cache import FeatureCache
    from tspo_eval.selection import FrameSelector
    from tspo_eval.training.data import CandidateStore
    from tspo_eval.training.needles import compose_needle

    _root, (ann, videos), _ = needle_sets
    store = CandidateStore(FrameSelector(TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu"),
                                         cache=FeatureCache(tmp_path / "cache"), decoder="pyav"))
    paths = sorted(str(p) for p in Path(videos).glob("*.mp4"))
    target, pool = store.get(paths[0]), [store.get(p) for p in paths[1:]]
    composite, spans = compose_needle(target, [], pool, torch.Generator().manual_seed(0), clip_len=10, n_distractors=5)
    assert len(composite.frames) == 40 + 5 * 10
    mask = np.zeros(len(composite.frames), dtype=bool)
    for start, end in spans:
        mask[int(start): int(end) + 1] = True
    assert mask.sum() == 40
    target_rows = np.flatnonzero(mask)
    assert torch.equal(composite.features[torch.as_tensor(target_rows)], target.features)
    assert all(composite.sources[s] == paths[0] for s in composite.source_index[target_rows])
    assert not any(composite.sources[s] == paths[0] for s in composite.source_index[~mask])
    result = train(_options(tiny_agent_dir, ann, videos, tmp_path / "run", tmp_path / "cache", steps=2, needles=True,
                            off_policy="shaping"))
    assert all(np.isfinite(m["grad_norm"]) for m in result.metrics) and result.metrics[0]["span_frame_share"] is not None


@pytest.mark.parametrize("family, builder", [("qwen2_5_vl", "build_tiny_qwen2_5_vl"),
                                             ("llava_onevision", "build_tiny_llava_onevision")])
def test_one_step_with_a_real_vlm_answerer(family, builder, tiny_agent_dir, needle_sets, tmp_path, capsys) -> None:
    """The answerer is the same HF path the lmms-eval models use: one step trains, the loss is finite,
    the head's weights change, and the checkpoint works with ``tspo-eval select --agent``."""
    import tspo_eval.testing as testing
    from tspo_eval.agent import TemporalAgent
    from tspo_eval.cli import main

    _root, (ann, videos), _ = needle_sets
    vlm = getattr(testing, builder)(tmp_path / family)
    out = tmp_path / "run"
    spec = f"{family}:{vlm},device=cpu,dtype=fp32,max_pixels=3136,min_pixels=784"
    result = train(TrainOptions("synthetic", str(ann), str(videos), spec, str(out),
                                selector=_selector(tiny_agent_dir, tmp_path / "cache"), steps=1, prompts_per_step=2,
                                group_size=4, num_frames=4, tau0=1.0, save_every=1, progress=False))
    [step] = [m for m in result.metrics if "loss" in m]
    assert np.isfinite(step["loss"]) and step["seconds_answerer"] > 0
    before = TemporalAgent.from_pretrained(tiny_agent_dir, device="cpu").head.state_dict()
    after = TemporalAgent.from_pretrained(out, device="cpu").head.state_dict()
    if step["zero_grad_share"] < 1.0:  # a random VLM can answer every frame set alike: then nothing moves
        assert any(not torch.equal(before[k], after[k]) for k in before)
    video = min(Path(videos).glob("*.mp4"))
    assert main(["select", str(video), "-q", "What colour?", "--agent", str(out), "--json", "--decoder", "pyav",
                 "--no-cache", "-k", "4"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["frame_indices"]) == 4
