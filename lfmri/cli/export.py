r"""Export a trained checkpoint to ONNX and/or TorchScript, checked against PyTorch: ``lfmri-export``.

    lfmri-export ckpt_path=RUN/checkpoints/best.ckpt output_dir=DIR_OR_FILE \
        [format=onnx|torchscript|both] [overwrite=false] [opset=N] [tolerance=1e-4]
    lfmri-export pretrained=srdensenet-kspace-x2 output_dir=exports/      # a shipped network

The network is rebuilt from the checkpoint's own config (read with ``weights_only=True``, so
exporting never executes code from the checkpoint). Exported files take (B, 1, H, W) float32 images
named ``image`` and return ``sr``; batch, height and width are dynamic; H and W must be multiples of
the model's ``size_multiple`` (stored in the file's metadata with the model card). Every file is
re-run on a real brain slice degraded as the checkpoint's degradation does, and on a batch of
another size, and kept only if it reproduces PyTorch within ``tolerance``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from lfmri.cli.options import fail, parse_options
from lfmri.export.options import FORMATS, ExportConfig

PROG = "lfmri-export"
RENAMED = {"output": "output_dir"}  # the same option names in every tool


def parse_args(argv: Sequence[str]) -> ExportConfig:
    """``key=value`` options over :class:`~lfmri.export.exporters.ExportConfig`."""
    cfg = parse_options(PROG, ExportConfig, argv, __doc__, required=["ckpt_path|pretrained", "output_dir"],
                        example="ckpt_path=RUN/checkpoints/best.ckpt output_dir=exports/", renamed=RENAMED)
    if cfg.format not in FORMATS:
        fail(PROG, f"bad value for option 'format': {cfg.format!r}; expected one of {', '.join(FORMATS)}")
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")  # the progress lines
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    # torch and the exporters are imported after the options are read, so --help stays fast
    from lfmri.checkpoints.load import CheckpointError
    from lfmri.export.exporters import ExportError, export_checkpoint, torchscript_metadata
    from lfmri.pretrained import resolve as resolve_checkpoint

    try:
        cfg.ckpt_path = str(resolve_checkpoint(cfg.ckpt_path, cfg.pretrained))
        done = export_checkpoint(cfg)
    except (CheckpointError, ExportError, FileExistsError, ValueError) as err:
        fail(PROG, str(err))
    for fmt, (path, diff) in done.items():
        how = f" ({torchscript_metadata(path)['lfmri_torchscript']})" if fmt == "torchscript" else ""
        print(f"{fmt}{how}: {path}; max abs difference from PyTorch on the MNI152 slice and a second size: {diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
