"""What an exported file is (input and output names, metadata) and how it is held to PyTorch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.contracts import as_image, context_slices, input_mode, size_multiple
from lfmri.export.options import TOLERANCE  # noqa: F401  (one value: the option default and the check)

INPUT_NAME, OUTPUT_NAME = "image", "sr"
CARD_KEY = "lfmri_card"  # ONNX metadata_props key / TorchScript extra file (json)
TORCHSCRIPT_CARD_FILE = f"{CARD_KEY}.json"


class ExportError(RuntimeError):
    """A model that cannot be exported, or an export that does not reproduce PyTorch."""


def _model(net: nn.Module) -> str:
    return type(net).__name__


def _check_exportable(net: nn.Module) -> None:
    if input_mode(net) == "lr_complex":
        raise ExportError(f"{_model(net)} reads complex k-space data; exported files take real (B, 1, H, W) images")


def example_input(net: nn.Module, batch: int = 2) -> torch.Tensor:
    """A trace input whose batch, height and width all differ, so the exporter shares no symbols;
    a multi-slice network reads ``2 * context_slices + 1`` channels (the slice and its neighbours)."""
    m = size_multiple(net)
    return torch.rand(batch, 2 * context_slices(net) + 1, m * -(-24 // m), m * -(-32 // m))


def metadata(net: nn.Module, card: Mapping | None) -> dict[str, str]:
    """What a consumer of the file needs besides the weights: the model card and the input contract."""
    return {
        CARD_KEY: json.dumps(dict(card or {}), default=str, sort_keys=True),
        "lfmri_input_mode": input_mode(net),
        "lfmri_scale": str(int(getattr(net, "scale", 1))),
        "lfmri_size_multiple": str(size_multiple(net)),
    }


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=true to replace it")


def pytorch_outputs(net: nn.Module, images: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The eager PyTorch model's outputs (eval mode): the reference every export is held to."""
    net.eval()
    with torch.no_grad():
        return [as_image(net(x.float())).numpy() for x in images]


def _compare(name: str, run, net: nn.Module, images: Sequence[torch.Tensor], tolerance: float,
             expected: Sequence[np.ndarray] | None = None) -> float:
    """Largest |run(x) - net(x)| over ``images``; any shape mismatch or excess is an ExportError."""
    expected = pytorch_outputs(net, images) if expected is None else expected
    worst = 0.0
    for x, want in zip(images, expected, strict=True):
        x = x.float()
        try:
            with torch.no_grad():
                got = run(x)
        except ExportError:
            raise
        except Exception as err:  # TorchScript puts the reason on the last line
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise ExportError(f"{_model(net)}: {name} failed on input {tuple(x.shape)}: {lines[-1] if lines else type(err).__name__}") from err
        got = np.asarray(got.detach() if isinstance(got, torch.Tensor) else got)
        if got.shape != want.shape:
            raise ExportError(
                f"{_model(net)}: {name} returned shape {got.shape} for input {tuple(x.shape)}, PyTorch {want.shape}"
            )
        diff = float(np.abs(got.astype(np.float64) - want).max())
        if not np.isfinite(diff) or diff >= tolerance:
            raise ExportError(
                f"{_model(net)}: {name} differs from PyTorch by {diff:.3g} (>= {tolerance:g}) on input {tuple(x.shape)}"
            )
        worst = max(worst, diff)
    return worst
