"""The options of ``lfmri-export``, declared without importing torch.

``lfmri-export --help`` builds its text from this dataclass (field comments are the descriptions,
:func:`lfmri.cli.options.descriptions`), so this module imports nothing heavy: help stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

TOLERANCE = 1e-4
FORMATS = ("onnx", "torchscript", "both")


@dataclass
class ExportConfig:
    """The options of ``lfmri-export`` (:mod:`lfmri.cli.export`)."""

    ckpt_path: str | None = None  # a trained checkpoint, or:
    pretrained: str | None = None  # a network shipped with lfmri (lfmri-pretrained list)
    # a folder (files named after the model, NAME_xS.onnx / .pt), or a .onnx / .pt file (old name: output)
    output_dir: str = MISSING
    format: str = "onnx"  # onnx | torchscript | both
    overwrite: bool = False  # replace exported files that already exist
    opset: int | None = None  # ONNX opset; default: the exporter's
    tolerance: float = TOLERANCE  # largest accepted |exported - PyTorch|
    trust_targets: list[str] = field(default_factory=list)  # module prefixes (besides lfmri) a checkpoint may name
