"""The options of ``lfmri-export``, declared without importing torch.

``lfmri-export --help`` builds its text from this dataclass (field comments are the descriptions,
:func:`lfmri.cli.options.descriptions`), so this module imports nothing heavy: help stays fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import MISSING

TOLERANCE = 1e-4
# the ONNX opsets torch's exporters write as asked (torch.export's exporter: 18 and later; asked for an
# older one it writes 18); the written file's opset is checked again after the export
MIN_OPSET, MAX_OPSET = 18, 23
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

    def __post_init__(self) -> None:
        """Values no export can honour, refused before any work (parse_options turns this into one line)."""
        if not math.isfinite(self.tolerance) or self.tolerance <= 0:
            # NaN compares false with every difference (the check would pass anything); <= 0 fails every file, after the export
            raise ValueError(f"tolerance={self.tolerance}: must be a positive finite number, e.g. tolerance={TOLERANCE:g}")
        if self.opset is not None and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ValueError(f"opset={self.opset}: the exporters write ONNX opsets {MIN_OPSET} to {MAX_OPSET}; "
                             "leave it out for the exporter's default")
