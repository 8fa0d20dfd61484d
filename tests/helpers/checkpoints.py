"""Checkpoints for tests, written as ``train.py`` writes them but without training, and crafted ones."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.checkpoints.load import METADATA_KEY
from lfmri.checkpoints.stored_run import StoredRun
from tests.helpers.config import compose

# the networks lfmri ships (lfmri/pretrained) and docs/models.md documents
SHIPPED = ["srdensenet-kspace-x2", "lowfield-sim", "gan-cpce-kspace-x2"]


def make_checkpoint(path: Path, *overrides: str) -> Path:
    """A checkpoint as train.py writes it (config, card, ``net.`` weights), without training."""
    cfg = compose(*overrides, output_dir="/tmp/lfmri-predict-test")
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    net = instantiate(cfg.model)
    return StoredRun.of_network(net, config).save(path)


class MakeMarker:
    """Unpickled by ``numpy.load(allow_pickle=True)``, this creates a folder: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


KINDS = ["pickle", "open"]  # the two crafted checkpoints of :func:`crafted`


def crafted(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A real lfmri checkpoint whose stored config was edited by an attacker.

    ``pickle``: the model is ``numpy.load(io.BytesIO(<pickle that creates a marker>))``;
    ``open``: the degradation is ``builtins.open(victim, "w")``, which truncates the victim.
    Returns (checkpoint, marker or victim).
    """
    path = make_checkpoint(tmp_path / f"{kind}.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    checkpoint = torch.load(path, weights_only=True)
    config = checkpoint[METADATA_KEY]["config"]
    if kind == "pickle":
        witness = tmp_path / "marker"
        payload = pickle.dumps(MakeMarker(str(witness)))
        config["model"] = {"_target_": "numpy.load", "allow_pickle": True,
                           "_args_": [{"_target_": "io.BytesIO", "_args_": [payload]}]}
    else:
        witness = tmp_path / "victim.txt"
        witness.write_text("precious")
        config["degradation"] = {"_target_": "builtins.open", "_args_": [str(witness), "w"]}
    torch.save(checkpoint, path)
    return path, witness


def untouched(kind: str, witness: Path) -> bool:
    """Whether the crafted checkpoint's payload did not run (no marker; the victim unchanged)."""
    return not witness.exists() if kind == "pickle" else witness.read_text() == "precious"


GROUPS = ["model", "degradation", "data"]  # where :func:`interpolating` puts its interpolation


def interpolating(tmp_path: Path, group: str = "model", name: str = "interpolating") -> tuple[Path, Path]:
    """A real lfmri checkpoint whose stored ``config[group]`` was given an OmegaConf interpolation that
    writes a file when resolved: ``payload: ${oc.create:{_target_: numpy.savetxt, fname: <witness>, X: [1.0]}}``
    (every ``_target_`` the allow-list sees is lfmri's). Returns (checkpoint, the file it would write)."""
    path = make_checkpoint(tmp_path / f"{name}.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    checkpoint = torch.load(path, weights_only=True)
    witness = tmp_path / f"{name}-written.txt"
    checkpoint[METADATA_KEY]["config"][group]["payload"] = (
        "${oc.create:{_target_: numpy.savetxt, fname: '" + str(witness) + "', X: [1.0]}}")
    torch.save(checkpoint, path)
    return path, witness
