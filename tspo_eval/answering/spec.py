"""Answerers named by a spec string: ``name[:path][,key=value...]``.

Examples: ``synthetic-reader``; ``qwen2_5_vl:/models/Qwen2.5-VL-7B-Instruct,dtype=bf16,device=cuda:0``;
``hf:OpenGVLab/InternVL3_5-8B-HF,attn_implementation=sdpa`` (any supported family).

Every family of :data:`~tspo_eval.answering.families.FAMILIES` is a name (the checkpoint must be of
that family); ``hf`` takes any supported family; ``synthetic-reader`` is the pixel-reading stand-in.
:func:`register_answerer` adds a backend.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tspo_eval.answering import Answerer
from tspo_eval.answering.families import FAMILIES
from tspo_eval.errors import InputError


@dataclass(frozen=True)
class AnswererSpec:
    """A parsed spec: backend ``name``, model ``path`` (may be empty), ``options`` (strings)."""

    name: str
    path: str = ""
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        tail = "".join(f",{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.name}{':' + self.path if self.path else ''}{tail}"


AnswererFactory = Callable[[AnswererSpec], Answerer]
#: backend name -> factory; add more with :func:`register_answerer`
ANSWERER_FACTORIES: dict[str, AnswererFactory] = {}


def register_answerer(name: str, factory: AnswererFactory) -> None:
    """Make ``name[:path][,key=value...]`` build ``factory(spec)``."""
    ANSWERER_FACTORIES[name] = factory


def parse_answerer_spec(text: str) -> AnswererSpec:
    """``name[:path][,key=value...]`` -> :class:`AnswererSpec`; :class:`InputError` naming the known backends.

    The path may itself contain ``:`` (only the first one separates the name).
    """
    known = ", ".join(sorted(ANSWERER_FACTORIES))
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"empty answerer spec; known answerers: {known}")
    head, *option_items = text.strip().split(",")
    name, _, path = head.partition(":")
    name = name.strip().lower()
    if name not in ANSWERER_FACTORIES:
        raise InputError(f"unknown answerer {name!r} in {text!r}; known answerers: {known}")
    options: dict[str, str] = {}
    for item in option_items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"answerer {text!r}: option {item!r} is not key=value")
        options[key.strip()] = value.strip()
    return AnswererSpec(name=name, path=path.strip(), options=options)


def build_answerer(spec: str | AnswererSpec) -> Answerer:
    """The answerer of ``spec`` (a string is parsed with :func:`parse_answerer_spec`)."""
    parsed = parse_answerer_spec(spec) if isinstance(spec, str) else spec
    return ANSWERER_FACTORIES[parsed.name](parsed)


# ---- built-in backends ------------------------------------------------------------------------
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
#: HF answerer options and how their string values are read
_HF_OPTIONS: dict[str, Callable[[str], Any]] = {
    "dtype": str, "device": str, "device_map": str, "attn_implementation": str, "system_prompt": str,
    "min_pixels": int, "max_pixels": int, "total_pixels": int,
    "add_time_instruction": lambda v: _BOOL[v.lower()], "use_cache": lambda v: _BOOL[v.lower()],
    "exact_frame_times": lambda v: _BOOL[v.lower()],
}


def _hf_answerer(spec: AnswererSpec) -> Answerer:
    from tspo_eval.answering.hf_video import HFVideoAnswerer

    if not spec.path:
        raise InputError(f"answerer {spec}: needs a checkpoint, e.g. {spec.name}:/models/checkpoint")
    unknown = sorted(set(spec.options) - set(_HF_OPTIONS))
    if unknown:
        raise InputError(f"answerer {spec}: unknown options {', '.join(unknown)}; accepted: {', '.join(sorted(_HF_OPTIONS))}")
    try:
        options = {key: _HF_OPTIONS[key](value) for key, value in spec.options.items()}
    except (KeyError, ValueError) as exc:
        raise InputError(f"answerer {spec}: bad option value ({exc})") from None
    accepted = () if spec.name == "hf" else (spec.name,)
    return HFVideoAnswerer.from_pretrained(spec.path, accepted_model_types=accepted, requested_as=f"answerer {spec}",
                                           **options)


def _synthetic_reader(spec: AnswererSpec) -> Answerer:
    from tspo_eval.answering.synthetic_reader import SyntheticReader

    unknown = sorted(set(spec.options) - {"max_std", "max_distance"})
    if unknown or spec.path:
        raise InputError(f"answerer {spec}: synthetic-reader takes no path and only max_std=, max_distance= options")
    try:
        values = {k: float(v) for k, v in spec.options.items()}
    except ValueError:
        raise InputError(f"answerer {spec}: max_std/max_distance must be numbers") from None
    return SyntheticReader(**values)


register_answerer("synthetic-reader", _synthetic_reader)
register_answerer("hf", _hf_answerer)
for _model_type in FAMILIES:
    register_answerer(_model_type, _hf_answerer)
