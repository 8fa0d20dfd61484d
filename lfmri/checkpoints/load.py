"""Checkpoints that carry their own recipe, and loading them without executing code.

Every checkpoint written by ``train.py`` holds, under the ``"lfmri"`` key, plain data only: the
resolved training config, the data split and a small model card. ``evaluate.py`` (and later
``predict``) rebuild the network from that config, never from today's defaults, and load with
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers.

Plain data is not enough: Hydra's ``instantiate`` calls whatever a ``_target_`` names, so a stored
config is a program. :func:`check_targets` therefore checks every ``_target_`` in a checkpoint's
metadata before anything is built from it: it must be a class defined inside ``lfmri`` (or a
module prefix the user trusts explicitly, ``trust_targets=[mypkg.models]`` or
``LFMRI_TRUST_TARGETS=mypkg.models``), or one of the few training classes in :data:`FOREIGN_TARGETS`.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import importlib
import importlib.util
import os
import re
import subprocess
from collections.abc import Iterable
from typing import Any
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

import lfmri
from lfmri.checkpoints.atomic_io import atomic_torch_save
from lfmri.contracts import input_mode

METADATA_KEY = "lfmri"
SCHEMA_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that lfmri cannot use; the message names the file."""


OWN_NAMESPACE = "lfmri"
TRUST_ENV = "LFMRI_TRUST_TARGETS"  # comma-separated module prefixes whose classes checkpoints may name
# Classes outside lfmri that lfmri's own training configs name (optimizers, schedulers, losses, the
# Trainer and its callbacks/strategies/loggers), as {module as written: allowed names}. Only classes, looked
# up directly in that module: ``torch.optim.adam.torch.hub.load`` or a function never pass.
FOREIGN_TARGETS = {
    "torch.optim": "*",
    "torch.optim.lr_scheduler": "*",
    "torch.nn": "*Loss",
    "lightning.pytorch": "Trainer",
    "lightning.pytorch.callbacks": "*",
    "lightning.pytorch.strategies": "*",
    # logger=tensorboard stores TensorBoardLogger in every checkpoint's config; Lightning's other
    # loggers are allowed alike, so a run that names one in its logger group still evaluates
    "lightning.pytorch.loggers": "*Logger",
}
# lfmri functions that configs name as factories (everything else in lfmri must be a class)
OWN_FUNCTIONS = {"lfmri.training.wandb_logger.wandb_logger"}
# Where classes lived before lfmri was grouped by job (0.1.0 checkpoints store these paths):
# load_checkpoint rewrites them, so checkpoints trained before the move keep working.
MOVED_MODULES = {
    "lfmri.models.base": "lfmri.contracts",
    "lfmri.data.grid": "lfmri.geometry.grid",
    "lfmri.data.resample": "lfmri.geometry.resample",
    "lfmri.data.slicing": "lfmri.geometry.slicing",
    "lfmri.data.io": "lfmri.geometry.nifti",
    "lfmri.data.inputs": "lfmri.geometry.inputs",
    "lfmri.data.kspace": "lfmri.degrade.kspace",
    "lfmri.data.degradations": "lfmri.degrade.degradations",
    "lfmri.data.lowfield": "lfmri.degrade.lowfield",
    "lfmri.models.zerofill": "lfmri.degrade.baselines",
    "lfmri.models.bicubic": "lfmri.degrade.baselines",
    "lfmri.models.critic_base": "lfmri.models.critics.base",
    "lfmri.models.cpce_critic": "lfmri.models.critics.cpce",
    "lfmri.models.circle_critic": "lfmri.models.critics.circle",
    "lfmri.metrics": "lfmri.scoring.metrics",
    "lfmri.checkpoint_io": "lfmri.checkpoints.atomic_io",
    "lfmri.callbacks": "lfmri.training.callbacks",
    "lfmri.csv_logger": "lfmri.training.csv_logger",
    "lfmri.wandb_logger": "lfmri.training.wandb_logger",
    "lfmri.run_record": "lfmri.training.run_record",
    "lfmri.schedules": "lfmri.training.schedules",
    "lfmri.cli": "lfmri.cli.common",
}


def moved_target(target: str) -> str:
    """``target`` at today's module path (``lfmri.data.degradations.X`` -> ``lfmri.degrade.degradations.X``)."""
    module, _, name = target.rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target


def rewrite_moved_targets(node: object) -> None:
    """Rewrite, in place, every ``_target_`` of a stored config that names a module lfmri has moved."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                node[key] = moved_target(value)
            else:
                rewrite_moved_targets(value)
    elif isinstance(node, list):
        for value in node:
            rewrite_moved_targets(value)


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def trusted_prefixes(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """``lfmri`` plus the module prefixes the user trusts (option ``trust_targets`` and ``$LFMRI_TRUST_TARGETS``)."""
    names = [OWN_NAMESPACE, *(extra or ()), *os.environ.get(TRUST_ENV, "").split(",")]
    prefixes = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        if not _DOTTED.fullmatch(name):
            raise ValueError(f"trust_targets: {name!r} is not a module name like mypkg.models")
        prefixes.append(name)
    return tuple(dict.fromkeys(prefixes))


def _import_inside(prefix: str, parts: list[str]):
    """Import ``prefix`` and the longest run of its submodules named by ``parts``, never a module outside it.

    Returns (module, remaining parts). Submodules are found with ``find_spec`` on packages only, so a
    name such as ``lfmri.checkpoints.load.subprocess`` stops at ``lfmri.checkpoints.load`` with ``subprocess`` left over.
    """
    module = importlib.import_module(prefix)
    rest = list(parts)
    while len(rest) > 1 and hasattr(module, "__path__"):
        name = f"{module.__name__}.{rest[0]}"
        if importlib.util.find_spec(name) is None:
            break
        module = importlib.import_module(name)
        rest.pop(0)
    return module, rest


def target_problem(target: object, trusted: tuple[str, ...]) -> str | None:
    """Why ``target`` may not be instantiated from a checkpoint, or ``None`` when it may."""
    if not isinstance(target, str):
        return f"is a {type(target).__name__}, not a dotted class name"
    if not _DOTTED.fullmatch(target) or "." not in target:
        return "is not a dotted class name"
    module_name, _, name = target.rpartition(".")
    if module_name in FOREIGN_TARGETS:
        if not fnmatch.fnmatchcase(name, FOREIGN_TARGETS[module_name]):
            return f"is outside lfmri and not one of the allowed {module_name}.{FOREIGN_TARGETS[module_name]} classes"
        obj = getattr(importlib.import_module(module_name), name, None)
        root = ".".join(module_name.split(".")[:2])
        if not isinstance(obj, type) or not (obj.__module__ == root or obj.__module__.startswith(root + ".")):
            return f"is not a class of {root}"
        return None
    prefix = next((p for p in trusted if target.startswith(p + ".")), None)
    if prefix is None:
        return f"is outside lfmri and the trusted modules {list(trusted)} (see trust_targets in README.md)"
    try:
        module, rest = _import_inside(prefix, target[len(prefix) + 1 :].split("."))
    except Exception as err:  # an import error of lfmri's own or a trusted module
        return f"cannot be imported ({type(err).__name__}: {err})"
    if len(rest) != 1 and not hasattr(module, rest[0]):
        return f"does not exist (no {module.__name__}.{rest[0]})"
    if len(rest) != 1:
        return f"reaches {'.'.join(rest)} through module {module.__name__}; name a class directly"
    obj = getattr(module, rest[0], None)
    if obj is None:
        return "does not exist"
    if not (getattr(obj, "__module__", "") == prefix or str(getattr(obj, "__module__", "")).startswith(prefix + ".")):
        return f"is {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', rest[0])}, defined outside {prefix}"
    if not isinstance(obj, type) and target not in OWN_FUNCTIONS:
        return "is not a class"
    return None


def config_targets(node: object) -> set[str]:
    """Every ``_target_`` string at any depth of a config (what a run itself instantiates)."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, child in node.items():
            if key == "_target_" and isinstance(child, str):
                found.add(child)
            found |= config_targets(child)
    elif isinstance(node, (list, tuple)):
        for child in node:
            found |= config_targets(child)
    return found


def check_targets(
    node: object,
    source: str | os.PathLike,
    trust_targets: Iterable[str] | None = None,
    path: str = "",
    known_targets: Iterable[str] = (),
) -> None:
    """Refuse (:class:`CheckpointError`) any ``_target_`` at any depth of ``node`` that may not be built.

    Runs before anything is instantiated from a checkpoint; the message names the file, the key
    path and the target. ``known_targets``: exact names the caller instantiates anyway (train.py
    passes those of its own config, so a run with the user's own callback can resume itself).
    """
    trusted = trusted_prefixes(trust_targets)
    known = set(known_targets)

    def walk(value: object, where: str) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                here = f"{where}.{key}" if where else str(key)
                if key == "_target_":
                    problem = None if isinstance(child, str) and child in known else target_problem(child, trusted)
                    if problem:
                        raise CheckpointError(f"{source}: refused to build {here}={child!r}: it {problem}")
                walk(child, here)
        elif isinstance(value, (list, tuple)):
            for i, child in enumerate(value):
                walk(child, f"{where}[{i}]")

    walk(node, path)


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


def instantiate_stored(node: Any, source: str | os.PathLike, trust_targets: Iterable[str] | None = None, key: str = "", **kwargs: Any) -> Any:
    """Hydra-instantiate a config node taken from a checkpoint, after :func:`check_targets` passed on it."""
    container = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    check_targets(container, source, trust_targets, path=key)
    try:
        return instantiate(node, **kwargs)
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


def provenance(card: Mapping, scale: int, ckpt_path: str) -> str:
    """What made an output, for the NIfTI ``descrip`` field (80 bytes; the file name is cut first)."""
    return f"lfmri {lfmri.__version__} {card.get('name', 'model')} x{scale} {Path(str(ckpt_path)).name}"
