"""A stored run: the one way a checkpoint's dictionary is written, and its parts rebuilt.

A checkpoint holds ``state_dict`` (the LightningModule's weights, the network's under ``net.``),
Lightning's own keys when ``train.py`` wrote it, and under ``"lfmri"`` plain data only: the
resolved training config, the data split and the model card. :class:`StoredRun` writes that
dictionary (:meth:`StoredRun.of_network`, :meth:`StoredRun.metadata` for Lightning's checkpoints)
and rebuilds what predict, evaluate, export and the benchmarks need from it: the config, the
degradation, the network, the data module and the card. Reading goes through
:func:`lfmri.checkpoints.load.load_checkpoint` (``weights_only=True``, old module paths rewritten,
every ``_target_`` checked against the allow-list), and every part is instantiated only after its
config passed :func:`lfmri.checkpoints.targets.check_targets` again.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lfmri.checkpoints.atomic_io import atomic_torch_save
from lfmri.checkpoints.card import git_commit, model_card, provenance
from lfmri.checkpoints.load import (
    METADATA_KEY,
    SCHEMA_VERSION,
    build_network,
    instantiate_stored,
    load_checkpoint,
    network_state,
)
from lfmri.checkpoints.targets import check_inert, check_targets
from lfmri.degrade.degradations import Degradation
from lfmri.pretrained import half_state


@dataclass
class StoredRun:
    """A checkpoint read (or made) by lfmri, and what can be rebuilt from it.

    Args:
        checkpoint: the whole dictionary: ``state_dict``, ``"lfmri"`` metadata, Lightning's keys.
        source: what messages name (the file, or e.g. ``"bench"`` for one made in memory).
        trust_targets: module prefixes besides lfmri whose classes the stored config may name.
    """

    checkpoint: dict
    source: str = "checkpoint"
    trust_targets: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: str | os.PathLike, trust_targets: Iterable[str] | None = None,
             known_targets: Iterable[str] = ()) -> StoredRun:
        """Read a checkpoint file safely (:func:`~lfmri.checkpoints.load.load_checkpoint`)."""
        trust = tuple(trust_targets or ())
        return cls(load_checkpoint(path, trust, known_targets), str(path), trust)

    @staticmethod
    def metadata(config: Mapping, net: nn.Module, split: Mapping | None = None, name: str | None = None,
                 commit: str | None = None) -> dict:
        """The ``checkpoint["lfmri"]`` entry: resolved ``config``, ``split`` and the card of ``net``."""
        return {
            "schema": SCHEMA_VERSION,
            "config": dict(config),
            "split": split,
            "card": model_card(config, net, commit, name),
        }

    @classmethod
    def of_network(cls, net: nn.Module, config: Mapping, split: Mapping | None = None, name: str | None = None,
                   commit: str | None = None, source: str = "checkpoint") -> StoredRun:
        """``net`` stored as ``train.py`` stores it (``net.`` weights and the metadata), without training.

        ``config`` is a resolved training config (plain data), e.g. a composed ``conf/train.yaml``.
        """
        state = {f"net.{k}": v for k, v in net.state_dict().items()}
        return cls({"state_dict": state, METADATA_KEY: cls.metadata(config, net, split, name, commit)}, source)

    def shipped(self, card: Mapping) -> StoredRun:
        """This run as ``lfmri/pretrained`` ships it: the network's weights alone, in float16, and ``card``."""
        state = {f"net.{k}": v for k, v in half_state(network_state(self.checkpoint)).items()}
        meta = {"schema": self.meta["schema"], "config": self.meta["config"], "split": self.split, "card": dict(card)}
        return StoredRun({"state_dict": state, METADATA_KEY: meta}, self.source, self.trust_targets)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint to ``path`` (atomically: the old file or the whole new one)."""
        atomic_torch_save(self.checkpoint, path)
        return Path(path)

    @property
    def meta(self) -> dict:
        """The ``"lfmri"`` entry as stored: ``schema``, ``config``, ``split``, ``card`` (plain data)."""
        return self.checkpoint[METADATA_KEY]

    @functools.cached_property
    def config(self) -> DictConfig:
        """The resolved training config the run was trained with (refused if any value holds ``${``:
        :func:`~lfmri.checkpoints.targets.check_inert`, so reading a key never evaluates one)."""
        check_inert(self.meta["config"], self.source, f"{METADATA_KEY}.config")
        return OmegaConf.create(self.meta["config"])

    @property
    def split(self) -> dict | None:
        """The data split (``{stage: [segments]}``) as stored, or ``None``."""
        return self.meta.get("split")

    @property
    def card(self) -> dict:
        """The model card (empty when the checkpoint stores none)."""
        return self.meta.get("card") or {}

    def degradation(self) -> Degradation:
        """The degradation the network was trained on, built from the stored config."""
        return self.instantiate("degradation")

    def network(self) -> nn.Module:
        """The network with its trained weights, in eval mode."""
        return build_network(self.checkpoint, self.trust_targets, self.source)

    def datamodule(self, **kwargs: Any) -> L.LightningDataModule:
        """The run's data module, built from the stored config with ``kwargs`` (degradation, split...).

        The files a data module writes during training (its ``OUTPUT_OPTIONS``: ``split_file``,
        ``report_file``) are never taken from the stored config: a stored path is not a write target,
        so they are ``None`` unless the caller names one (under its own ``output_dir``).
        """
        outputs = {name: None for name in getattr(self.data_class(), "OUTPUT_OPTIONS", ())}
        return self.instantiate("data", **{**outputs, **kwargs})

    def data_class(self) -> type:
        """The class of the run's data module (checked against the allow-list, not built)."""
        node = self.meta["config"].get("data") or {}
        check_targets(node, self.source, self.trust_targets, f"{METADATA_KEY}.config.data")
        return get_class(str(node.get("_target_")))

    def instantiate(self, key: str, **kwargs: Any) -> Any:
        """The stored config's top-level group ``key``, instantiated once its targets passed the allow-list."""
        return instantiate_stored(self.config[key], self.source, self.trust_targets, f"{METADATA_KEY}.config.{key}", **kwargs)

    def provenance(self, scale: int) -> str:
        """What made an output, for the NIfTI ``descrip`` field."""
        return provenance(self.card, scale, self.source)


def weights_fingerprint(state: Mapping[str, Any]) -> str:
    """A digest of the network's weights in a LightningModule state dict (its ``net.`` entries, what
    evaluate and predict read; every entry of a module without a ``net``)."""
    digest = hashlib.sha256()
    keys = [k for k in state if k.startswith("net.")] or list(state)
    for key in sorted(keys):
        value = state[key]
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def averaged_updates(trainer: L.Trainer) -> int | None:
    """How many updates the weight average of ``trainer`` has had; ``None`` without one."""
    from lightning.pytorch.callbacks import WeightAveraging

    counts = [int(cb._average_model.n_averaged) for cb in trainer.callbacks
              if isinstance(cb, WeightAveraging) and cb._average_model is not None]
    return max(counts) if counts else None


class CheckpointMetadata(L.Callback):
    """Adds the resolved config, the split, the model card and which weights it holds to every saved
    checkpoint.

    ``checkpoint["lfmri"]["weights"]``: the optimiser ``step`` it was saved at, whether its weights
    are a weight average (``averaged``, with the average's ``averaged_updates``) or the raw network,
    and ``same_as_init``: whether its network weights are bit-identical to the ones fitting started
    from (its ``init`` digest), i.e. whether the checkpoint holds anything this run trained.

    Args:
        config: the resolved training config (plain data).
        name: the network's row name in tables.
    """

    def __init__(self, config: Mapping, name: str | None = None) -> None:
        self.config = dict(config)
        self.name = name
        self.commit = git_commit()
        self.init_fingerprint: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # before a resumed checkpoint is loaded: the weights this run started from (seed, init_from)
        if stage == "fit" and self.init_fingerprint is None:
            self.init_fingerprint = weights_fingerprint(pl_module.state_dict())

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        datamodule = trainer.datamodule
        split = datamodule.split_dict() if hasattr(datamodule, "split_dict") else None
        net = pl_module.net if hasattr(pl_module, "net") else pl_module
        checkpoint[METADATA_KEY] = StoredRun.metadata(self.config, net, split, self.name, self.commit)
        # after the weight average's own hook (callbacks run in order; this one is added last): the
        # state dict is what the checkpoint stores, averaged or raw
        updates = averaged_updates(trainer)
        fingerprint = weights_fingerprint(checkpoint["state_dict"])
        checkpoint[METADATA_KEY]["weights"] = {
            "step": int(trainer.global_step),
            "averaged": bool(updates),
            "averaged_updates": updates or 0,
            "fingerprint": fingerprint,
            "init": self.init_fingerprint,
            "same_as_init": self.init_fingerprint is not None and fingerprint == self.init_fingerprint,
        }


@functools.cache  # loads and checks every shipped checkpoint: once a process, not once a scan
def shipped_contracts() -> dict[str, dict]:
    """The input contract of every shipped network (``lfmri/pretrained``), by name: what a contract
    warning offers instead of a network a scan does not fit (:func:`lfmri.geometry.scan_contract.what_to_do`)."""
    from lfmri.geometry.scan_contract import contract_of
    from lfmri.pretrained import available, checkpoint_path

    return {name: dict(contract_of(StoredRun.load(checkpoint_path(name)).card) or {}) for name in available()}
