"""Checkpoints in the TSPO-0.4B layout, and the trainer state that makes ``--resume`` exact.

An agent checkpoint folder is a CLIP ``save_pretrained`` folder (config, processor and tokenizer
files) whose weights are two shards listed in ``model.safetensors.index.json``:
``clip.safetensors`` (the frozen CLIP, written once per folder; hard-linked between folders where
the file system allows) and ``selector.safetensors`` (the ``selector.*`` keys), so
``TemporalAgent.from_pretrained(folder)`` and every command and host model load it as they load
TSPO-0.4B, and a save rewrites only the 14 MB of the head.

``DIR/trainer_state/`` holds ``state.pt`` (step, head weights, optimizer, scheduler, tau, RNG
states, best evaluation score) and ``settings.json`` (the options a resumed run must share).
Every file is written through :mod:`tspo_eval.atomic_files`.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from loguru import logger
from torch import nn

from tspo_eval.agent.checkpoint import SELECTOR_PREFIXES, list_weight_files
from tspo_eval.atomic_files import atomic_output, atomic_write
from tspo_eval.errors import CheckpointError, InputError

CLIP_SHARD = "clip.safetensors"
SELECTOR_SHARD = "selector.safetensors"
INDEX_NAME = "model.safetensors.index.json"
STATE_DIR = "trainer_state"
STATE_FILE = "state.pt"
SETTINGS_FILE = "settings.json"
_WEIGHT_NAMES = {INDEX_NAME, "pytorch_model.bin.index.json"}


def clip_tensors(clip_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the CLIP folder except the selector's (``selector.`` / ``multiModal_align.``)."""
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for file in list_weight_files(Path(clip_dir)):
        if file.suffix != ".safetensors":
            state = torch.load(str(file), map_location="cpu", weights_only=True)
            found.update({k: v for k, v in state.items() if not k.startswith(SELECTOR_PREFIXES)})
            continue
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not iterable
                if not name.startswith(SELECTOR_PREFIXES):
                    found[name] = handle.get_tensor(name)
    if not found:
        raise CheckpointError(clip_dir, "no CLIP weights found")
    return found


def _copy_file(source: Path, target: Path) -> None:
    """``target`` becomes a hard link to ``source`` (atomically), or an atomic copy across file systems."""
    tmp = target.with_name(f".{target.name}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, target)
        return
    except OSError:
        tmp.unlink(missing_ok=True)
    with open(source, "rb") as src, atomic_output(target) as dst:
        shutil.copyfileobj(src, dst, length=16 << 20)


def write_clip_files(out_dir: Path, clip_dir: Path, clip_shard: Path | None = None) -> None:
    """Config, processor files and ``clip.safetensors`` of ``clip_dir`` into ``out_dir``.

    ``clip_shard``: an already written ``clip.safetensors`` to link/copy instead of re-reading the CLIP.
    """
    from safetensors.torch import save as save_safetensors

    out_dir.mkdir(parents=True, exist_ok=True)
    for file in sorted(Path(clip_dir).iterdir()):
        if not file.is_file() or file.name in _WEIGHT_NAMES or file.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt"):
            continue
        if file.name.startswith(".") or file.suffix == ".tmp":
            continue
        atomic_write(out_dir / file.name, file.read_bytes())
    if clip_shard is not None and clip_shard.is_file():
        _copy_file(clip_shard, out_dir / CLIP_SHARD)
    else:
        tensors = {k: v.contiguous() for k, v in clip_tensors(Path(clip_dir)).items()}
        atomic_write(out_dir / CLIP_SHARD, save_safetensors(tensors, metadata={"format": "pt"}))


def write_selector(out_dir: Path, head: nn.Module) -> None:
    """``selector.safetensors`` (keys ``selector.<name>``) and the shard index naming both shards."""
    from safetensors import safe_open
    from safetensors.torch import save as save_safetensors

    state = {f"selector.{k}": v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
    atomic_write(out_dir / SELECTOR_SHARD, save_safetensors(state, metadata={"format": "pt"}))
    with safe_open(str(out_dir / CLIP_SHARD), framework="pt", device="cpu") as handle:
        clip_keys = list(handle.keys())
    weight_map = {k: CLIP_SHARD for k in clip_keys}
    weight_map.update({k: SELECTOR_SHARD for k in state})
    total = (out_dir / CLIP_SHARD).stat().st_size + (out_dir / SELECTOR_SHARD).stat().st_size
    index = {"metadata": {"total_size": total, "format": "pt"}, "weight_map": dict(sorted(weight_map.items()))}
    atomic_write(out_dir / INDEX_NAME, json.dumps(index, indent=1) + "\n")


def write_agent_checkpoint(out_dir: Path, head: nn.Module, clip_dir: Path, clip_shard: Path | None = None,
                           refresh_clip: bool = False) -> Path:
    """The whole agent folder (CLIP files unless already there and not ``refresh_clip``, then the head)."""
    out_dir = Path(out_dir)
    if refresh_clip or not (out_dir / CLIP_SHARD).is_file() or not (out_dir / "config.json").is_file():
        write_clip_files(out_dir, Path(clip_dir), clip_shard)
    write_selector(out_dir, head)
    return out_dir


# ---- trainer state ----------------------------------------------------------------------------
def state_dir(out: Path) -> Path:
    return Path(out) / STATE_DIR


def has_trainer_state(out: Path) -> bool:
    return (state_dir(out) / STATE_FILE).is_file()


def save_trainer_state(out: Path, state: dict[str, Any], settings: dict[str, Any]) -> None:
    """``state.pt`` (torch.save) and ``settings.json``, each written atomically (settings first)."""
    folder = state_dir(out)
    atomic_write(folder / SETTINGS_FILE, json.dumps(settings, indent=1, sort_keys=True) + "\n")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(folder / STATE_FILE, buffer.getvalue())


def load_trainer_state(out: Path) -> dict[str, Any]:
    """The saved state (CheckpointError when unreadable)."""
    path = state_dir(out) / STATE_FILE
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated / foreign file
        raise CheckpointError(path, f"cannot read the trainer state ({type(exc).__name__}: {exc})") from exc


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """InputError naming every setting that differs from the run saved in ``out``."""
    path = state_dir(out) / SETTINGS_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"--resume: cannot read {path} ({exc})") from None
    current = json.loads(json.dumps(settings))  # same JSON types as the saved copy
    differ = [f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now"
              for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if differ:
        raise InputError(f"--resume into {out}: it was made with other settings ({'; '.join(differ)})")
    logger.debug("resume settings match {}", path)


def rng_states() -> dict[str, Any]:
    """Every global RNG the process may touch: python, numpy, torch CPU (and CUDA when present)."""
    import random

    import numpy as np

    states: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    import random

    import numpy as np

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
