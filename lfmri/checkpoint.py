"""Checkpoints that carry their own recipe, and loading them without executing code.

Every checkpoint written by ``train.py`` holds, under the ``"lfmri"`` key, plain data only: the
resolved training config, the data split and a small model card. ``evaluate.py`` (and later
``predict``) rebuild the network from that config, never from today's defaults, and load with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import datetime as _dt
import subprocess
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

import lfmri
from lfmri.checkpoint_io import atomic_torch_save
from lfmri.models.base import input_mode

METADATA_KEY = "lfmri"
SCHEMA_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that lfmri cannot use; the message names the file."""


def git_commit() -> str | None:
    """The commit of the lfmri source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(lfmri.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def model_card(config: Mapping, net: nn.Module, commit: str | None, name: str | None = None) -> dict:
    """What anyone applying the network must know, as plain data."""
    data = config.get("data", {})
    return {
        "name": name or type(net).__name__.lower(),
        "model": type(net).__name__,
        "scale": int(getattr(net, "scale", 1)),
        "input_mode": input_mode(net),
        "parameters": sum(p.numel() for p in net.parameters()),
        "slice_axis": data.get("slice_axis"),
        "percentiles": list(data.get("percentiles", [])),
        "degradation": dict(config.get("degradation", {})),
        "data": dict(data),
        "lfmri_version": lfmri.__version__,
        "commit": commit,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class CheckpointMetadata(L.Callback):
    """Adds the resolved config, the split and the model card to every saved checkpoint."""

    def __init__(self, config: Mapping, name: str | None = None) -> None:
        self.config = dict(config)
        self.name = name
        self.commit = git_commit()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        datamodule = trainer.datamodule
        checkpoint[METADATA_KEY] = {
            "schema": SCHEMA_VERSION,
            "config": self.config,
            "split": datamodule.split_dict() if hasattr(datamodule, "split_dict") else None,
            "card": model_card(self.config, pl_module.net if hasattr(pl_module, "net") else pl_module, self.commit, self.name),
        }


def load_checkpoint(path: str | Path) -> dict:
    """Read an lfmri checkpoint safely (``weights_only=True``) and check its metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or corrupt files
        raise CheckpointError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err
    meta = checkpoint.get(METADATA_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{path}: not an lfmri checkpoint (no '{METADATA_KEY}' metadata with the training config)")
    if meta.get("schema") != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: written with lfmri checkpoint schema {meta.get('schema')!r}, this lfmri "
            f"({lfmri.__version__}) reads schema {SCHEMA_VERSION}; use the lfmri version that trained it"
        )
    return checkpoint


def record_test_metrics(path: str | Path, metrics: Mapping[str, float]) -> None:
    """Store the test-split metrics in a checkpoint's model card (rewritten atomically)."""
    path = Path(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint[METADATA_KEY]["card"]["test_metrics"] = {k: float(v) for k, v in metrics.items()}
    atomic_torch_save(checkpoint, path)


def network_state(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The network's parameters from a LightningModule state dict (``net.`` prefix removed).

    Half-precision tensors (the storage of ``lfmri/pretrained``) are widened to float32.
    """
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith("net."):
            if value.dtype == torch.float16:
                value = value.float()
            state[key[len("net.") :].replace("_orig_mod.", "")] = value
    return state


def build_network(checkpoint: Mapping) -> nn.Module:
    """Instantiate the checkpoint's network from its stored config and load its weights."""
    config = OmegaConf.create(checkpoint[METADATA_KEY]["config"])
    net = instantiate(config.model)
    net.load_state_dict(network_state(checkpoint))
    return net.eval()
