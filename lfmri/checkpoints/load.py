"""Checkpoints that carry their own recipe, and loading them without executing code.

Every checkpoint written by ``train.py`` holds, under the ``"lfmri"`` key, plain data only: the
resolved training config, the data split and a small model card (written by
:class:`lfmri.checkpoints.stored_run.StoredRun`). ``evaluate.py``, ``predict`` and ``export``
rebuild the network from that config, never from today's defaults, and load with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers. Every
``_target_`` of the metadata is rewritten to today's module paths (:mod:`lfmri.checkpoints.moves`)
and checked against the allow-list (:mod:`lfmri.checkpoints.targets`) before anything is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

import lfmri
from lfmri.checkpoints.atomic_io import atomic_torch_save
# the allow-list, the moved-module map and the card have modules of their own; these names stay
# importable from here, where callers have always found them
from lfmri.checkpoints.card import git_commit, model_card, provenance  # noqa: F401
from lfmri.checkpoints.moves import MOVED_MODULES, moved_target, rewrite_moved_targets  # noqa: F401
from lfmri.checkpoints.targets import (  # noqa: F401
    FOREIGN_TARGETS,
    OWN_FUNCTIONS,
    OWN_NAMESPACE,
    TRUST_ENV,
    CheckpointError,
    check_inert,
    check_targets,
    config_targets,
    target_problem,
    trusted_prefixes,
)

METADATA_KEY = "lfmri"
SCHEMA_VERSION = 1


def load_checkpoint(path: str | Path, trust_targets: Iterable[str] | None = None, known_targets: Iterable[str] = ()) -> dict:
    """Read an lfmri checkpoint safely (``weights_only=True``) and check its metadata.

    Every ``_target_`` in the metadata is checked (:func:`check_targets`) here, so every caller
    (predict, evaluate, export, init_from, resume, pretrained models) refuses a checkpoint whose
    config names code outside lfmri and the trusted modules.
    """
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
    rewrite_moved_targets(meta)
    check_targets(meta, path, trust_targets, path=METADATA_KEY, known_targets=known_targets)
    check_inert(meta["config"], path, f"{METADATA_KEY}.config")  # no ${...} is ever evaluated from a file
    check_finite_weights(checkpoint, path)
    return checkpoint


def check_finite_weights(checkpoint: Mapping, source: str | os.PathLike) -> None:
    """Refuse (:class:`CheckpointError` naming the file and a tensor) weights holding NaN or Inf: what a
    diverged run leaves in ``last.ckpt``; predicting with them writes an all-NaN volume, training from
    them trains on NaN."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: has no state_dict (the network's weights)")
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int(value.numel() - torch.isfinite(value).sum())
            raise CheckpointError(f"{source}: weights {key} hold {bad} NaN/Inf values (a diverged run?); use an earlier checkpoint")


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


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node)`` called with ``kwargs`` handed to the constructor as they are.

    ``instantiate(node, **kwargs)`` merges the keyword arguments into the config and resolves it, so a
    string among them (a file name of a stored split, found by ``data.pattern``) would have its
    ``${...}`` evaluated; built as a partial and called with them, they stay plain Python values.
    """
    if not kwargs:
        return instantiate(node)
    return instantiate(node, _partial_=True)(**kwargs)


def instantiate_stored(node: Any, source: str | os.PathLike, trust_targets: Iterable[str] | None = None, key: str = "", **kwargs: Any) -> Any:
    """Hydra-instantiate a config node taken from a checkpoint, after :func:`check_targets` and
    :func:`check_inert` passed on it; ``kwargs`` reach the constructor as they are (:func:`build`)."""
    container = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    check_targets(container, source, trust_targets, path=key)
    check_inert(container, source, key)
    try:
        return build(node, **kwargs)
    except Exception as err:  # a stored value this lfmri refuses (hr_size not divisible by scale...): the file's problem
        cause = err.__cause__ or err
        message = str(cause).strip().splitlines()
        raise CheckpointError(f"{source}: cannot build its stored {key or 'config'} ({type(cause).__name__}: "
                              f"{message[0] if message else ''})") from err


def build_network(checkpoint: Mapping, trust_targets: Iterable[str] | None = None, source: str = "checkpoint") -> nn.Module:
    """Instantiate the checkpoint's network from its stored config and load its weights.

    The model config is checked again here (:func:`check_targets`), so a caller that read the
    checkpoint some other way still never builds a target outside lfmri and the trusted modules.
    """
    stored = checkpoint[METADATA_KEY]["config"]
    check_targets(stored.get("model"), source, trust_targets, path=f"{METADATA_KEY}.config.model")
    check_inert(stored, source, f"{METADATA_KEY}.config")
    try:
        config = OmegaConf.create(stored)
        net = instantiate(config.model)
    except Exception as err:  # keywords this lfmri's network does not take, a value it refuses: the checkpoint's problem
        cause = err.__cause__ or err
        raise CheckpointError(f"{source}: cannot build its network from the stored config.model "
                              f"({type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''})") from err
    try:
        net.load_state_dict(network_state(checkpoint))
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:  # missing/unexpected keys, shape mismatches
        first = str(err).strip().splitlines()
        raise CheckpointError(f"{source}: its weights do not fit its network {type(net).__name__} "
                              f"({' '.join(line.strip() for line in first[:3])[:400]})") from err
    return net.eval()
