"""The ``Scorer`` protocol: what FrameSelector needs from a frame scorer, checked when it is built."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tspo_eval.agent import Scorer, check_scorer
from tspo_eval.agent.scorer import SCORER_MEMBERS, missing_scorer_members
from tspo_eval.selection import FrameSelector
from tspo_eval.testing.scorers import DelegatingScorer


class Wrapped(DelegatingScorer):
    """A scorer by delegation (how tests and tools wrap a real scorer), with every member."""


def test_members_are_what_frame_selector_uses() -> None:
    assert set(SCORER_MEMBERS) == {"name", "fingerprint", "encoder_fingerprint", "device", "encode_frames",
                                   "encode_text", "score", "select"}


def test_a_wrapped_scorer_is_accepted_and_selects_like_the_agent(tiny_agent, make_video) -> None:
    video = make_video("protocol_clip.mp4", n_frames=150, fps=25.0)
    wrapped = Wrapped(tiny_agent)
    assert isinstance(wrapped, Scorer) and check_scorer(wrapped) is wrapped and missing_scorer_members(wrapped) == []
    direct = FrameSelector(tiny_agent, cache=False, decoder="pyav").select(video, "What moves?", num_frames=3)
    via = FrameSelector(wrapped, cache=False, decoder="pyav").select(video, "What moves?", num_frames=3)
    assert via.to_dict() == direct.to_dict()


@pytest.mark.parametrize("member", SCORER_MEMBERS)
def test_a_scorer_lacking_a_member_is_refused_by_name(tiny_agent, member: str) -> None:
    stub = Wrapped(tiny_agent)
    if member in vars(stub):
        delattr(stub, member)
    else:  # a method: shadow it on a subclass without it
        stub.__class__ = type("Lacking", (), {k: v for k, v in vars(DelegatingScorer).items()
                                              if not k.startswith("__") and k != member})
    assert not isinstance(stub, Scorer)
    with pytest.raises(TypeError, match=rf"is not a frame scorer: it lacks {member} ") as info:
        FrameSelector(stub, cache=False)
    assert "tspo_eval.agent.scorer.Scorer" in str(info.value) and "\n" not in str(info.value)


def test_a_non_callable_method_and_a_plain_object_are_refused(tiny_agent) -> None:
    stub = Wrapped(tiny_agent)
    stub.score = 0.5  # an attribute where a method belongs
    with pytest.raises(TypeError, match="Wrapped is not a frame scorer: it lacks score"):
        FrameSelector(stub, cache=False)
    everything = "name, fingerprint, encoder_fingerprint, device, encode_frames, encode_text, score, select"
    with pytest.raises(TypeError, match=f"object is not a frame scorer: it lacks {everything} "):
        FrameSelector(object(), cache=False)


def test_device_none_means_unknown_and_overlaps_decoding(tiny_agent, tmp_path: Path) -> None:
    unknown = Wrapped(tiny_agent)
    unknown.device = None
    assert isinstance(unknown, Scorer) and FrameSelector(unknown, cache=False).prefetch is True
    unknown.device = torch.device("cpu")
    assert FrameSelector(unknown, cache=False).prefetch is False
