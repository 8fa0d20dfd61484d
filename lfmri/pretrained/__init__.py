"""Trained networks shipped inside lfmri, each with its model card.

``lfmri/pretrained/NAME.ckpt`` is an ordinary lfmri checkpoint (training config, split and card
under ``checkpoint["lfmri"]``, loaded with ``weights_only=True``) whose network weights are stored
in half precision to stay small; they are widened to float32 when loaded (parity is tested).
``NAME.md`` is the human-readable card: training data, command, commit, steps, wall time and the
metrics on subjects the network never saw.

    lfmri-pretrained list
    lfmri-predict pretrained=srdensenet-kspace-x2 inputs=scan.nii.gz output_dir=out
    lfmri-evaluate pretrained=srdensenet-kspace-x2 inputs='[a.nii.gz,b.nii.gz]'

Nothing is downloaded: the files are part of the installed package.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command lines read this module for their --help: torch is not imported here
    import torch

PRETRAINED_DIR = Path(__file__).resolve().parent
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def available() -> list[str]:
    """Names of the shipped networks (``NAME.ckpt`` files beside this module)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.ckpt"))


def checkpoint_path(name: str) -> Path:
    """The file of shipped network ``name``; a clear error lists the names when it is unknown."""
    names = available()
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name not in names:
        listed = ", ".join(names) or "none are installed"
        raise ValueError(f"pretrained={name!r} is not a shipped network; available: {listed} (lfmri-pretrained list)")
    return PRETRAINED_DIR / f"{name}.ckpt"


def resolve(ckpt_path: str | None, pretrained: str | None, option: str = "ckpt_path") -> Path:
    """The checkpoint an entry point reads: exactly one of ``ckpt_path`` and ``pretrained``."""
    if (ckpt_path is None) == (pretrained is None):
        given = "both" if ckpt_path is not None else "neither"
        raise ValueError(f"give exactly one of {option}=PATH and pretrained=NAME (lfmri-pretrained list); got {given}")
    return checkpoint_path(pretrained) if pretrained is not None else Path(str(ckpt_path))


def card_text(name: str) -> str:
    """The Markdown model card of ``name``."""
    path = checkpoint_path(name).with_suffix(".md")
    return path.read_text() if path.is_file() else f"# {name}\n\n(no card file)\n"


def half_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors as float16 (storage only: :func:`lfmri.checkpoints.load.network_state`
    widens them again)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
