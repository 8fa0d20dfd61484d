"""Networks as TorchScript files (scripted, else traced and checked at several sizes)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.export.contract import (
    CARD_KEY,
    TORCHSCRIPT_CARD_FILE,
    TOLERANCE,
    ExportError,
    _check_exportable,
    _compare,
    _model,
    _refuse_existing,
    metadata,
    pytorch_outputs,
)
from lfmri.export.reference import reference_images
from lfmri.files import atomic_write

def _to_torchscript(net: nn.Module, images: Sequence[torch.Tensor], tolerance: float,
                    expected: Sequence[np.ndarray] | None = None) -> tuple[torch.jit.ScriptModule, str]:
    """``torch.jit.script``, else ``torch.jit.trace`` kept only if it reproduces the model at every size."""
    expected = pytorch_outputs(net, images) if expected is None else expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.15 marks torch.jit deprecated on every call
        try:
            scripted = torch.jit.script(net)
            _compare("torch.jit.script", scripted, net, images, tolerance, expected)
            return scripted, "script"
        except Exception as err:
            script_error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        try:
            with torch.no_grad():
                traced = torch.jit.trace(net, images[0].float(), check_trace=False)
            _compare("torch.jit.trace", traced, net, images, tolerance, expected)
            return traced, "trace"
        except Exception as err:
            trace_error = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    raise ExportError(
        f"{_model(net)} cannot be exported to TorchScript: torch.jit.script failed ({script_error}) and "
        f"torch.jit.trace does not reproduce it at every input size ({trace_error}); use format=onnx"
    )


def export_torchscript(net: nn.Module, path: str | Path, card: Mapping | None = None,
                       images: Sequence[torch.Tensor] | None = None, tolerance: float = TOLERANCE,
                       overwrite: bool = False, expected: Sequence[np.ndarray] | None = None) -> Path:
    """Write ``net`` as TorchScript (scripted, else traced and checked at several sizes).

    ``images`` (default :func:`reference_images`) decide whether a trace is trustworthy: tracing
    records one size's Python-side shape arithmetic, so it must reproduce the model on all of them.
    The metadata goes into the archive as extra files (``lfmri_card.json`` etc.).
    """
    path = Path(path)
    _refuse_existing(path, overwrite)
    _check_exportable(net)
    net = net.float().eval()
    module, method = _to_torchscript(net, reference_images(net) if images is None else images, tolerance, expected)
    extra = {f"{k}.json" if k == CARD_KEY else k: v for k, v in metadata(net, card).items()}
    extra["lfmri_torchscript"] = method
    with atomic_write(path) as tmp, warnings.catch_warnings():
        # torch.jit.save's deprecation notice for TorchScript: the format is what this function writes
        warnings.simplefilter("ignore")
        torch.jit.save(module, str(tmp), _extra_files=extra)
    return path


def torchscript_metadata(path: str | Path) -> dict:
    """The metadata stored in an exported TorchScript file: the model card and how it was made."""
    extra = {TORCHSCRIPT_CARD_FILE: "", "lfmri_torchscript": "", "lfmri_input_mode": "", "lfmri_size_multiple": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.15 marks torch.jit deprecated on every call
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    text = {k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}
    return {"card": json.loads(text.pop(TORCHSCRIPT_CARD_FILE)), **text}


def check_torchscript(path: str | Path, net: nn.Module, images: Sequence[torch.Tensor], tolerance: float = TOLERANCE,
                      expected: Sequence[np.ndarray] | None = None) -> float:
    """Load the saved TorchScript file and return its max abs difference from ``net`` on ``images``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.15 marks torch.jit deprecated on every call
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return loaded(x).numpy()

    return _compare("the TorchScript file", run, net, images, tolerance, expected)
