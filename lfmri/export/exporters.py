r"""Export a trained checkpoint to ONNX (and TorchScript where the model allows), checked against PyTorch.

Command line: ``lfmri-export`` (:mod:`lfmri.cli.export`).

The network is rebuilt from the checkpoint's own config with ``lfmri.checkpoints.stored_run`` (read with
``weights_only=True``, so exporting never executes code from the checkpoint). Exported files take
(B, C, H, W) float32 images named ``image`` (C = 1, or 2K+1 slices for a multi-slice network) and return
``sr``; batch, height and width are dynamic.
``lr`` models read the LR image and return it ``scale`` times larger; ``upsampled`` models read the
LR interpolated onto the HR grid; ``H`` and ``W`` must be multiples of the model's
``size_multiple`` (stored in the file's metadata, like the model card).

ONNX uses torch's ``torch.export``-based exporter (``torch.onnx.export(dynamo=True)``, the default
since torch 2.9; it needs ``onnxscript``): it captures shape arithmetic symbolically, so the dynamic
axes are real. The legacy TorchScript-based exporter (``dynamo=False``) still runs in torch 2.15
but warns that it will be removed; it is only the fallback for models ``torch.export`` cannot
capture (AMIR's data-dependent expert routing). It traces, so Python-side decisions on shapes are
recorded for one size. Hence every exported file is re-run (onnxruntime, or ``torch.jit.load``) on
a real brain slice and on a second batch of another size, and kept only if its largest absolute
difference from the PyTorch model is below ``tolerance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lfmri.checkpoints.stored_run import StoredRun
# the parts have modules of their own (contract, ONNX, TorchScript, reference images); their names
# stay importable from here, where callers have always found them
from lfmri.export.contract import (  # noqa: F401
    CARD_KEY,
    INPUT_NAME,
    OUTPUT_NAME,
    TORCHSCRIPT_CARD_FILE,
    TOLERANCE,
    ExportError,
    _refuse_existing,
    example_input,
    metadata,
    pytorch_outputs,
)
from lfmri.export.onnx_file import check_onnx, export_onnx, onnx_card, onnx_metadata  # noqa: F401
from lfmri.export.reference import mni_slice, reference_images  # noqa: F401
from lfmri.export.torchscript_file import check_torchscript, export_torchscript, torchscript_metadata  # noqa: F401
from lfmri.export.options import FORMATS, ExportConfig  # noqa: F401  (declared without torch, for a fast --help)
from lfmri.files import atomic_write, safe_name
from lfmri.progress import progress

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


def output_paths(output: str | Path, fmt: str, card: Mapping) -> dict[str, Path]:
    """Where each format goes: a folder gets ``NAME_xS.onnx`` / ``NAME_xS.pt``; a file is used as given."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}; expected one of {', '.join(FORMATS)}")
    formats = ["onnx", "torchscript"] if fmt == "both" else [fmt]
    output = Path(output)
    by_suffix = {v: k for k, v in SUFFIXES.items()}
    if output.suffix in by_suffix:
        if fmt != "both" and by_suffix[output.suffix] != fmt:
            raise ValueError(f"output_dir={output} has the suffix of {by_suffix[output.suffix]} but format={fmt}")
        return {f: output.with_suffix(SUFFIXES[f]) for f in formats}
    # the card is the checkpoint's, i.e. anyone's: its name must not lead out of the folder
    stem = safe_name(f"{card.get('name', 'model')}_x{card.get('scale', 1)}", "model")
    return {f: output / f"{stem}{SUFFIXES[f]}" for f in formats}


def export_checkpoint(cfg: ExportConfig) -> dict[str, tuple[Path, float]]:
    """Rebuild the checkpoint's network, export every requested format, verify each: {format: (path, max diff)}."""
    run = StoredRun.load(cfg.ckpt_path, cfg.trust_targets)
    net = run.network().float().eval()
    degradation = run.degradation()
    card = dict(run.card)
    card.setdefault("name", type(net).__name__.lower())
    card.setdefault("scale", int(getattr(net, "scale", 1)))
    paths = output_paths(cfg.output_dir, cfg.format, card)
    for path in paths.values():  # refuse before any work, not after the first format
        _refuse_existing(path, cfg.overwrite)
    images = reference_images(net, degradation=degradation)  # the slice as this checkpoint's degradation makes it
    expected = pytorch_outputs(net, images)
    done = {}
    bar = progress(2 * len(paths), "export and verify", "step")  # seconds to minutes per format
    for fmt, path in paths.items():
        with atomic_write(path) as tmp:  # only a verified file gets the real name
            if fmt == "onnx":
                export_onnx(net, tmp, card, cfg.opset, overwrite=True)
                bar.update(1)
                diff = check_onnx(tmp, net, images, cfg.tolerance, expected)
            else:
                export_torchscript(net, tmp, card, images, cfg.tolerance, overwrite=True, expected=expected)
                bar.update(1)
                diff = check_torchscript(tmp, net, images, cfg.tolerance, expected)
            bar.update(1)
        done[fmt] = (path, diff)
    bar.close()
    return done
