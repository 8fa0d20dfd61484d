r"""Export a trained checkpoint to ONNX (and TorchScript where the model allows), checked against PyTorch.

Command line: ``lfmri-export`` (:mod:`lfmri.cli.export`).

The network is rebuilt from the checkpoint's own config with ``lfmri.checkpoints.load`` (read with
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

import contextlib
import functools
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING, OmegaConf
from torch import nn

from lfmri.checkpoints.load import METADATA_KEY, build_network, instantiate_stored, load_checkpoint
from lfmri.contracts import as_image, context_slices, input_mode, size_multiple
from lfmri.data.datasets import degraded_sample
from lfmri.degrade.degradations import BicubicDegradation, Degradation
from lfmri.files import atomic_write, safe_name
from lfmri.progress import progress

INPUT_NAME, OUTPUT_NAME = "image", "sr"
CARD_KEY = "lfmri_card"  # ONNX metadata_props key / TorchScript extra file (json)
TORCHSCRIPT_CARD_FILE = f"{CARD_KEY}.json"
TOLERANCE = 1e-4
FORMATS = ("onnx", "torchscript", "both")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(RuntimeError):
    """A model that cannot be exported, or an export that does not reproduce PyTorch."""


@dataclass
class ExportConfig:
    """The options of ``lfmri-export`` (:mod:`lfmri.cli.export`)."""

    ckpt_path: str | None = None  # a trained checkpoint, or:
    pretrained: str | None = None  # a network shipped with lfmri (python -m lfmri.pretrained list)
    output: str = MISSING  # a folder (files named after the model) or a .onnx / .pt file
    format: str = "onnx"  # onnx | torchscript | both
    overwrite: bool = False
    opset: int | None = None  # ONNX opset; default: the exporter's
    tolerance: float = TOLERANCE  # largest accepted |exported - PyTorch|
    trust_targets: list[str] = field(default_factory=list)  # module prefixes (besides lfmri) a checkpoint may name


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


def _root_cause(err: BaseException) -> str:
    """The innermost cause of an exporter error, in a line or two (torch's outer messages are generic)."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    where = next((line for line in lines if line.startswith("Caused by")), "")
    return f"{type(err).__name__}: {lines[0] if lines else ''}" + (f" {where}" if where else "")


def _quiet():
    """Silence the exporters' progress lines, graph dumps and deprecation warnings."""
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
    return path


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (model card json, input contract, exporter)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def onnx_card(path: str | Path) -> dict:
    """The model card stored in an exported ONNX file."""
    return json.loads(onnx_metadata(path)[CARD_KEY])


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


@functools.lru_cache(maxsize=1)
def _mni_slice() -> np.ndarray:
    from lfmri.data.mni152 import load_mni152

    data = load_mni152(1).data
    image = data[:, :, data.shape[2] // 2]
    return np.clip(image / np.percentile(data, 99), 0, 1).astype(np.float32)


def mni_slice() -> torch.Tensor:
    """The middle axial slice of nilearn's MNI152 T1 (1 mm), divided by its 99th percentile, in [0, 1]."""
    return torch.from_numpy(_mni_slice().copy())


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x


def reference_images(net: nn.Module, hr: torch.Tensor | None = None, degradation: Degradation | None = None) -> list[torch.Tensor]:
    """What exports are checked on: a real slice as the model reads it, and a batch of 2 of another size.

    ``hr`` (default :func:`mni_slice`) is the HR slice; ``degradation`` (default: the checkpoint's,
    as :func:`export_checkpoint` passes it; else noise-free bicubic at the network's scale) prepares
    and degrades it with a fixed seed, and the network reads the view it declares (the LR, or the
    LR upsampled onto the HR grid), reflect-padded to a multiple of ``size_multiple(net)``. The
    second input is a centred crop of about 60 % per side, flipped and unflipped, so batch, height
    and width all change.
    """
    _check_exportable(net)
    hr = mni_slice() if hr is None else hr
    s = int(getattr(net, "scale", 1))
    if degradation is None:
        degradation = BicubicDegradation(scale=s)
    prepared = degradation.prepare_hr(hr.reshape(1, *hr.shape[-2:]).float())
    sample = degraded_sample(prepared, degradation, torch.Generator().manual_seed(0), input_mode(net))
    # the network reads normalised intensities: ringing of the downsampling is clipped to [0, 1]
    x = (sample["lr_up"] if input_mode(net) == "upsampled" else sample["lr"])[None].float().clamp(0, 1)
    m = size_multiple(net)
    first = _pad_to(x, m)
    ch, cw = max(m, round(0.6 * x.shape[-2] / m) * m), max(m, round(0.6 * x.shape[-1] / m) * m)
    if (ch, cw) == tuple(first.shape[-2:]):
        ch += m
    top, left = max(0, (x.shape[-2] - ch) // 2), max(0, (x.shape[-1] - cw) // 2)
    crop = _pad_to(x[..., top : top + ch, left : left + cw], m)
    second = torch.cat([crop, crop.flip(-1)])
    return [first.contiguous(), second.contiguous()]


def output_paths(output: str | Path, fmt: str, card: Mapping) -> dict[str, Path]:
    """Where each format goes: a folder gets ``NAME_xS.onnx`` / ``NAME_xS.pt``; a file is used as given."""
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}; expected one of {', '.join(FORMATS)}")
    formats = ["onnx", "torchscript"] if fmt == "both" else [fmt]
    output = Path(output)
    by_suffix = {v: k for k, v in SUFFIXES.items()}
    if output.suffix in by_suffix:
        if fmt != "both" and by_suffix[output.suffix] != fmt:
            raise ValueError(f"output={output} has the suffix of {by_suffix[output.suffix]} but format={fmt}")
        return {f: output.with_suffix(SUFFIXES[f]) for f in formats}
    # the card is the checkpoint's, i.e. anyone's: its name must not lead out of the folder
    stem = safe_name(f"{card.get('name', 'model')}_x{card.get('scale', 1)}", "model")
    return {f: output / f"{stem}{SUFFIXES[f]}" for f in formats}


def export_checkpoint(cfg: ExportConfig) -> dict[str, tuple[Path, float]]:
    """Rebuild the checkpoint's network, export every requested format, verify each: {format: (path, max diff)}."""
    checkpoint = load_checkpoint(cfg.ckpt_path, cfg.trust_targets)
    net = build_network(checkpoint, cfg.trust_targets, cfg.ckpt_path).float().eval()
    stored = OmegaConf.create(checkpoint[METADATA_KEY]["config"])
    degradation = instantiate_stored(stored.degradation, cfg.ckpt_path, cfg.trust_targets, f"{METADATA_KEY}.config.degradation")
    card = dict(checkpoint[METADATA_KEY].get("card") or {})
    card.setdefault("name", type(net).__name__.lower())
    card.setdefault("scale", int(getattr(net, "scale", 1)))
    paths = output_paths(cfg.output, cfg.format, card)
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
