"""SelectorOptions: the one frozen options type of the selector, validated once, with one table of
host-argument names, embedded by the frame source, precompute and the commands."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from tspo_eval.errors import InputError
from tspo_eval.frame_source import HOST_ARGUMENTS, FrameSourceOptions, pop_host_options
from tspo_eval.precompute import PrecomputeOptions
from tspo_eval.selector_options import HOST_ARGUMENTS as SELECTOR_HOST_ARGUMENTS
from tspo_eval.selector_options import SelectorOptions, add_selector_arguments
from tspo_eval.training import TrainOptions


def test_values_are_normalised_and_frozen():
    options = SelectorOptions(scorer="CLIP", strategy="Bin-Max", num_frames="8", fps="0.5", decoder="PyAV")
    assert (options.scorer, options.strategy, options.num_frames, options.fps, options.decoder) == \
        ("clip", "bin-max", 8, 0.5, "pyav")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.num_frames = 3
    assert options.with_(num_frames=4).num_frames == 4 and options.num_frames == 8
    with pytest.raises(InputError, match="num_frames=0 must be a positive integer"):
        options.with_(num_frames=0)


@pytest.mark.parametrize("field, value, needle", [
    ("num_frames", -1, "num_frames"), ("fps", 0, "fps"), ("strategy", "best", "strategy"),
    ("scorer", "siglip", "scorer"), ("decoder", "ffmpeg", "decoder"),
])
def test_bad_values_name_the_option(field, value, needle):
    with pytest.raises(InputError, match=needle):
        SelectorOptions(**{field: value})


def test_feature_cache_off_and_folder_from_host_arguments(tmp_path):
    off = SelectorOptions.from_host_args({"feature_cache": "off", "tspo_path": "agent/dir", "candidate_fps": 2,
                                          "tspo_device": "cpu", "tspo_dtype": "fp32"}, owner="m")
    assert (off.cache, off.cache_dir, off.agent, off.fps, off.device, off.dtype) == \
        (False, None, "agent/dir", 2.0, "cpu", "fp32")
    folder = SelectorOptions.from_host_args({"feature_cache": str(tmp_path)})
    assert folder.cache and folder.cache_dir == str(tmp_path)
    with pytest.raises(InputError, match="m: unknown selector option"):
        SelectorOptions.from_host_args({"device": "cpu"}, owner="m")  # a VLM's device is not the selector's


def test_host_argument_errors_use_the_host_names():
    assert SelectorOptions.from_host_args({"candidate_workers": "3"}).workers == 3
    with pytest.raises(InputError, match=r"^m: candidate_workers='x' must be a positive integer$"):
        SelectorOptions.from_host_args({"candidate_workers": "x"}, owner="m")
    with pytest.raises(InputError, match=r"^m: candidate_fps=-1 must be positive$"):
        SelectorOptions.from_host_args({"candidate_fps": -1}, owner="m")
    with pytest.raises(InputError, match=r"^m: num_frames=0 must be a positive integer$"):
        SelectorOptions.from_host_args({"num_frames": 0}, owner="m")


def test_host_models_take_the_frame_source_and_selector_arguments(tmp_path):
    assert set(SELECTOR_HOST_ARGUMENTS) <= set(HOST_ARGUMENTS)
    kwargs = {"pretrained": "x", "device": "cuda", "tspo_device": "cpu", "num_frames": 16, "frame_selection": "uniform"}
    taken = pop_host_options(kwargs, owner="qwen2_5_vl_tspo")
    assert kwargs == {"pretrained": "x", "device": "cuda"}  # the VLM's arguments stay
    options = FrameSourceOptions.from_dict(taken)
    assert options.frame_selection == "uniform" and options.num_frames == 16 and options.selector.device == "cpu"
    with pytest.raises(InputError, match="qwen2_5_vl_tspo: strategy='best' is not one of"):
        pop_host_options({"strategy": "best"}, owner="qwen2_5_vl_tspo")


def test_the_command_line_helper_round_trips_and_speaks_in_flags():
    parser = argparse.ArgumentParser()
    add_selector_arguments(parser)
    defaults = SelectorOptions.from_args(parser.parse_args([]))
    assert defaults == SelectorOptions()
    given = SelectorOptions.from_args(parser.parse_args(
        ["--agent", "a", "-k", "8", "--strategy", "aks", "--scorer", "clip", "--fps", "2", "--decoder", "pyav",
         "--device", "cpu", "--dtype", "fp32", "--cache-dir", "c", "--no-cache"]))
    assert given == SelectorOptions(agent="a", num_frames=8, strategy="aks", scorer="clip", fps=2.0, decoder="pyav",
                                    device="cpu", dtype="fp32", cache_dir="c", cache=False)
    with pytest.raises(InputError, match="^--num-frames must be a positive integer, got 0$"):
        SelectorOptions.from_args(parser.parse_args(["-k", "0"]))
    with pytest.raises(InputError, match="^unknown decoder 'ffmpeg'; choose one of"):
        SelectorOptions.from_args(parser.parse_args(["--decoder", "ffmpeg"]))


@pytest.mark.parametrize("owner", [PrecomputeOptions, FrameSourceOptions, TrainOptions])
def test_precompute_the_frame_source_and_the_trainer_embed_the_one_type(owner):
    owner_fields = {f.name: f.type for f in dataclasses.fields(owner)}
    assert "SelectorOptions" in str(owner_fields["selector"])
    # no selector option is declared a second time beside it (the trainer's K is its own: frames per sampled set)
    selector_names = set(SelectorOptions.field_names()) - {"cache", "num_frames"}
    assert not selector_names & set(owner_fields)


def test_the_trainer_reads_init_and_clip_from_its_selector_options():
    options = TrainOptions("synthetic", "a.json", "videos", "synthetic-reader", "out",
                           selector=SelectorOptions(agent="RANDOM", clip_model="clip/dir", decoder="pyav"))
    validated = options.validated()
    assert (validated.init, validated.clip, validated.selector.decoder) == ("random", "clip/dir", "pyav")
    settings = validated.settings()
    assert settings["init"] == "random" and settings["decoder"] == "pyav" and "selector" not in settings
