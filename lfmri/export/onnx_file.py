"""Networks as self-contained ONNX files, and running them in ONNX Runtime against PyTorch.

The ``torch.export``-based exporter runs first; the legacy TorchScript-based one is the fallback
(see :mod:`lfmri.export.exporters` for why every file is checked at a second size).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.export.contract import (
    CARD_KEY,
    INPUT_NAME,
    OUTPUT_NAME,
    TOLERANCE,
    ExportError,
    _check_exportable,
    _compare,
    _model,
    _refuse_existing,
    example_input,
    metadata,
)
from lfmri.files import atomic_write

def _root_cause(err: BaseException) -> str:
    """The innermost cause of an exporter error, in a line or two (torch's outer messages are generic)."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    where = next((line for line in lines if line.startswith("Caused by")), "")
    return f"{type(err).__name__}: {lines[0] if lines else ''}" + (f" {where}" if where else "")


class _DropReplacedInitializers(logging.Filter):
    """Drops onnx_ir's INFO line "Replaced initializer 'a' with existing initializer 'b'", one per
    constant tensor it merges with an identical one while torch.onnx optimises the graph (a dozen per
    network; dozens of lines before the progress of predict or evaluate with backend=onnxruntime). The
    merge only shares storage; the exported file is checked against PyTorch afterwards (check_onnx)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Replaced initializer ")


_REPLACED_INITIALIZERS = _DropReplacedInitializers()
# the logger of that one message (onnx_ir.passes.common.initializer_deduplication): nothing else of onnx_ir is dropped
INITIALIZER_LOGGER = "onnx_ir.passes.common.initializer_deduplication"


def _quiet():
    """Silence the exporters' progress lines, graph dumps and deprecation warnings."""
    dedup = logging.getLogger(INITIALIZER_LOGGER)
    if _REPLACED_INITIALIZERS not in dedup.filters:
        dedup.addFilter(_REPLACED_INITIALIZERS)
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _export_dynamo(net: nn.Module, tmp: Path, meta: Mapping[str, str], opset: int | None) -> None:
    dim = torch.export.Dim.DYNAMIC
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(
            net, (example_input(net),), None, dynamo=True, external_data=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=({0: dim, 2: dim, 3: dim},),
        )
        program.model.metadata_props.update({**meta, "lfmri_onnx_exporter": "torch.export"})
        program.save(tmp, external_data=False)


def _export_legacy(net: nn.Module, tmp: Path, meta: Mapping[str, str], opset: int | None) -> None:
    import onnx

    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}}
    with torch.no_grad(), _quiet():
        torch.onnx.export(
            net, (example_input(net),), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes,
        )
    model = onnx.load(str(tmp))
    for key, value in {**meta, "lfmri_onnx_exporter": "torchscript"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp))


def export_onnx(net: nn.Module, path: str | Path, card: Mapping | None = None, opset: int | None = None,
                overwrite: bool = False) -> Path:
    """Write ``net`` as one self-contained ONNX file with dynamic batch, height and width.

    Weights are stored inside the file, the model card as json in ``metadata_props``. The
    ``torch.export``-based exporter runs first. Models it cannot capture (AMIR's data-dependent
    expert routing) go through the legacy TorchScript-based exporter, which traces: only
    :func:`check_onnx` at a second size shows that its dynamic axes hold, so always run it. The
    exporter used is stored as ``lfmri_onnx_exporter``; failures raise :class:`ExportError`.
    """
    path = Path(path)
    _refuse_existing(path, overwrite)
    _check_exportable(net)
    net = net.float().eval()
    meta = metadata(net, card)
    with atomic_write(path) as tmp:  # a failed export never leaves a half file
        try:
            _export_dynamo(net, tmp, meta, opset)
        except Exception as err:
            dynamo_error = _root_cause(err)
            tmp.unlink(missing_ok=True)
            try:
                _export_legacy(net, tmp, meta, opset)
            except Exception as legacy_err:
                raise ExportError(
                    f"{_model(net)}: ONNX export failed: torch.export ({dynamo_error}); "
                    f"legacy TorchScript-based exporter ({_root_cause(legacy_err)})"
                ) from legacy_err
        written = onnx_opset(tmp)
        if opset is not None and written != opset:
            # torch.export's exporter asked for an opset it cannot convert to keeps its own, with a warning only
            raise ExportError(f"{_model(net)}: opset={opset} was asked but the exporter wrote opset {written}; "
                              f"ask for opset={written} or leave opset out")
    return path


def onnx_opset(path: str | Path) -> int:
    """The version of the default (``ai.onnx``) operator set an ONNX file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (model card json, input contract, exporter)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def onnx_card(path: str | Path) -> dict:
    """The model card stored in an exported ONNX file."""
    return json.loads(onnx_metadata(path)[CARD_KEY])


def check_onnx(path: str | Path, net: nn.Module, images: Sequence[torch.Tensor], tolerance: float = TOLERANCE,
               expected: Sequence[np.ndarray] | None = None) -> float:
    """Run the file with onnxruntime on ``images`` and return the max abs difference from ``net``.

    Raises :class:`ExportError` at ``>= tolerance``; pass images of different sizes to prove the
    dynamic axes (a file with fixed shapes fails in onnxruntime or returns the wrong shape).
    ``expected`` (from :func:`pytorch_outputs`) saves rerunning the PyTorch model.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures are raised as ExportError
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> np.ndarray:
        try:
            return session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        except Exception as err:
            raise ExportError(f"{_model(net)}: onnxruntime failed on input {tuple(x.shape)}: {err}") from err

    return _compare("onnxruntime", run, net, images, tolerance, expected)
