"""The model card a checkpoint carries (plain data) and the provenance line outputs get from it."""

from __future__ import annotations

import datetime as _dt
import subprocess
from collections.abc import Mapping
from pathlib import Path

from torch import nn

import lfmri
from lfmri.contracts import input_mode


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


def provenance(card: Mapping, scale: int, ckpt_path: str) -> str:
    """What made an output, for the NIfTI ``descrip`` field (80 bytes; the file name is cut first)."""
    return f"lfmri {lfmri.__version__} {card.get('name', 'model')} x{scale} {Path(str(ckpt_path)).name}"
