"""Locating TSPO checkpoints and reading the selector weights out of them.

Layouts handled:
- a ``save_pretrained`` folder (TSPO-0.4B): CLIP config + ``model.safetensors`` or shards with a
  ``model.safetensors.index.json``, selector keys under ``selector.``;
- training checkpoints: ``.safetensors`` / ``.bin`` / ``.pt`` files (or folders of them) with the
  selector under ``multiModal_align.`` (optionally nested in ``state_dict``/``model``, ``module.``);
- a Hugging Face hub id (downloaded with ``huggingface_hub``; offline -> :class:`CheckpointError`).

Only the selector tensors are read (``safe_open``), so large shards are not loaded twice.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from loguru import logger
from torch import Tensor

from tspo_eval.errors import CheckpointError

SELECTOR_PREFIXES: tuple[str, ...] = ("selector.", "multiModal_align.")
WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


HUB_CLI = "hf"   # huggingface_hub's command line (>= 0.34; 1.x/2.x no longer install huggingface-cli)


def hub_download_command(hub_id: str, local_dir: str | None = None) -> str:
    """The shell command that downloads ``hub_id`` with huggingface_hub's own CLI."""
    folder = local_dir or f"./{hub_id.rsplit('/', 1)[-1]}"
    return f"{HUB_CLI} download {hub_id} --local-dir {folder}"


def resolve_checkpoint(path_or_hub_id: str | os.PathLike) -> Path:
    """A local file/folder for ``path_or_hub_id``; hub ids are fetched into the HF cache.

    Raises:
        CheckpointError: missing local path, or a hub id that cannot be fetched (e.g. offline).
    """
    text = os.fspath(path_or_hub_id)
    local = Path(text).expanduser()
    if local.exists():
        return local
    if not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        raise CheckpointError(text, "no such file or folder")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(text, allow_patterns=["*.json", "*.txt", "*.safetensors", "*.model"]))
        if not list_weight_files(folder, required=False):
            folder = Path(snapshot_download(text, allow_patterns=["*.json", "*.txt", "*.bin", "*.model"]))
    except Exception as exc:  # offline, unknown repo, gated, network errors: all mean "cannot get it"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            text,
            f"not a local path and could not be fetched from the Hugging Face Hub ({reason}); "
            f"download it first on a machine with access ({hub_download_command(text)}) "
            "and pass that folder",
        ) from exc
    logger.debug("hub checkpoint {} -> {}", text, folder)
    return folder


def list_weight_files(path: Path, required: bool = True) -> list[Path]:
    """Weight files of a checkpoint file or folder (shards from an index json when present)."""
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise CheckpointError(path, f"not a weight file (expected one of {', '.join(WEIGHT_SUFFIXES)})")
        return [path]
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(index, f"unreadable shard index ({exc})") from exc
            shards = [path / name for name in sorted(set(weight_map.values()))]
            missing = [s.name for s in shards if not s.is_file()]
            if missing:
                raise CheckpointError(path, f"shards listed in {index_name} are missing: {', '.join(missing)}")
            return shards
    for suffixes in ((".safetensors",), (".bin", ".pt", ".pth", ".ckpt")):
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes)
        if files:
            return files
    if required:
        raise CheckpointError(path, "no weight files (*.safetensors, *.bin, *.pt) found: not a checkpoint folder")
    return []


def _strip_wrappers(state: dict) -> dict:
    """Unwrap ``{"state_dict": ...}`` / ``{"model": ...}`` and a DDP ``module.`` prefix."""
    for key in ("state_dict", "model", "module"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def read_prefixed_tensors(files: list[Path], prefixes: tuple[str, ...] = SELECTOR_PREFIXES) -> dict[str, Tensor]:
    """All tensors whose name starts with one of ``prefixes``, from safetensors or torch files."""
    from safetensors import safe_open

    found: dict[str, Tensor] = {}
    for file in files:
        try:
            if file.suffix == ".safetensors":
                with safe_open(str(file), framework="pt", device="cpu") as handle:
                    for name in handle.keys():
                        if name.startswith(prefixes):
                            found[name] = handle.get_tensor(name)
            else:
                state = torch.load(str(file), map_location="cpu", weights_only=True)
                if not isinstance(state, dict):
                    raise CheckpointError(file, f"expected a state dict, found {type(state).__name__}")
                found.update({k: v for k, v in _strip_wrappers(state).items() if k.startswith(prefixes)})
        except CheckpointError:
            raise
        except Exception as exc:  # truncated / corrupt / not a weight file
            raise CheckpointError(file, f"cannot read weights ({type(exc).__name__}: {exc})") from exc
    return found


def load_selector_state(
    path: Path, expected_shapes: dict[str, tuple[int, ...]]
) -> tuple[dict[str, Tensor], str]:
    """Selector tensors (names without prefix) and the prefix they had, checked against ``expected_shapes``.

    Raises:
        CheckpointError: no selector keys, missing keys or wrong shapes (all named).
    """
    tensors = read_prefixed_tensors(list_weight_files(path))
    prefix = next((p for p in SELECTOR_PREFIXES if any(k.startswith(p) for k in tensors)), None)
    if prefix is None:
        raise CheckpointError(
            path,
            "no selector weights: expected keys 'selector.*' (TSPO-0.4B) or 'multiModal_align.*' "
            "(training checkpoint); is this a plain CLIP?",
        )
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = [prefix + name for name in expected_shapes if name not in state]
    if missing:
        raise CheckpointError(path, f"missing selector weights: {', '.join(missing)}")
    wrong = [
        f"{prefix}{name} has shape {tuple(state[name].shape)}, expected {shape}"
        for name, shape in expected_shapes.items()
        if tuple(state[name].shape) != tuple(shape)
    ]
    if wrong:
        raise CheckpointError(path, "selector weights with wrong shapes: " + "; ".join(wrong))
    extra = sorted(set(state) - set(expected_shapes))
    if extra:
        logger.warning("checkpoint {}: ignoring unknown selector keys {}", path, [prefix + k for k in extra])
    return {name: state[name] for name in expected_shapes}, prefix


def is_clip_folder(path: Path) -> bool:
    """Whether ``path`` is a folder with a CLIP ``config.json`` (``model_type`` ``clip``)."""
    config = path / "config.json"
    if not (path.is_dir() and config.is_file()):
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "clip"
    except (ValueError, OSError):
        return False
