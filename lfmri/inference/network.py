"""Running a network (or baseline) on whole slices of any size.

:func:`network_forward` is the one place where ``predict`` and ``evaluate`` decide how a network
runs: memory format, precision (``fp32``, ``bf16`` autocast, or ``auto``) and backend (eager
PyTorch or ONNX Runtime).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lfmri.contracts import as_image, context_slices, input_mode, size_multiple

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto", "16")
ALIASES = {"32": "fp32", "float32": "fp32", "bfloat16": "bf16"}
BACKENDS = ("torch", "onnxruntime")
# Model-card key written by :func:`lfmri.evaluation.parity.measure_bf16_parity`: mean in-brain PSNR of the bf16 output minus
# that of the float32 output (dB). ``precision=auto`` runs bf16 only when |delta| is below the limit.
BF16_PARITY_KEY = "bf16_psnr_brain_delta"
BF16_PARITY_LIMIT = 0.05


def model_input(net: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The view of a degraded batch that ``net`` declares it reads (``lfmri.contracts``).

    A multi-slice network reads the centre ``2 * context_slices + 1`` channels of the batch's
    ``lr_context`` (``lr_up_context``) view, which may hold more neighbours for another network."""
    mode = input_mode(net)
    k = context_slices(net)
    if k:
        if mode == "lr_complex":
            raise ValueError(f"{type(net).__name__}: multi-slice input of complex LR is not supported")
        key = "lr_up_context" if mode == "upsampled" else "lr_context"
        if key not in batch:
            raise KeyError(f"{type(net).__name__} reads {k} neighbouring slice(s) on each side but the batch has no "
                           f"{key!r} (data.context_slices=0?)")
        view = batch[key]
        extra = (view.shape[1] - (2 * k + 1)) // 2
        if extra < 0:
            raise ValueError(f"{type(net).__name__} reads {2 * k + 1} slices but the batch holds {view.shape[1]}")
        return view[:, extra : view.shape[1] - extra]
    if mode == "upsampled":
        if "lr_up" not in batch:
            raise KeyError(f"{type(net).__name__} reads pre-upsampled input but the batch has no 'lr_up'")
        return batch["lr_up"]
    if mode == "lr_complex":
        return batch.get("lr_complex", batch["lr"])
    return batch["lr"]


def channels_last_forward(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Run ``net`` in NHWC memory format (1.3-1.7x faster convolutions on CPU and tensor cores)."""
    net.to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x if x.is_complex() else x.contiguous(memory_format=torch.channels_last))

    return forward


def output_scale(net: nn.Module) -> int:
    """How much larger the output is than the input (1 for pre-upsampled models)."""
    return 1 if input_mode(net) == "upsampled" else int(getattr(net, "scale", 1))


def predict(net: nn.Module, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Apply ``net`` to (B, C, h, w), padding to the size it needs and cropping the result.

    ``forward`` (default ``net``) is what runs, e.g. a wrapper that changes memory format.
    """
    multiple = size_multiple(net)
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        # reflect keeps image statistics at the border; replicate when the image is too small
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    out = as_image((forward or net)(x))
    s = output_scale(net)
    return out[..., : h * s, : w * s]


NATIVE_BF16_ENV = "LFMRI_NATIVE_BF16"  # 1 or 0: take this answer instead of detecting it


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bfloat16 convolutions run natively (oneDNN AVX512-BF16/AMX on CPU, Ampere+ on CUDA).

    ``LFMRI_NATIVE_BF16=1`` (or ``0``) in the environment answers instead of the detection, for every
    tool at once (training's and evaluate's ``precision=auto`` included).

    Without native support CPU autocast still runs but emulates bf16, several times slower than
    float32, hence ``precision=bf16`` is refused there.
    """
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        # an explicit answer: containers that hide CPU flags, and the suite's run in each precision (.ci/run)
        return forced == "1"
    device = torch.device(device)
    if device.type == "cuda":
        # including_emulation=False: torch counts pre-Ampere GPUs (T4, V100), which emulate bf16, as supported
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(precision: str, device: torch.device | str, card: Mapping | None = None,
                      backend: str = "torch") -> str:
    """``fp32``, ``bf16`` or ``16`` for a ``precision`` option; one ``ValueError`` naming the option.

    ``auto`` is ``bf16`` only where the device supports it natively, the backend is torch, and the
    model card records a measured bf16 parity (``BF16_PARITY_KEY``) under ``BF16_PARITY_LIMIT`` dB;
    otherwise ``fp32`` (bf16 rounding is not free on every network, so it is never assumed).
    """
    device = torch.device(device)
    name = ALIASES.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of fp32 (or 32), bf16, auto, 16 (GPU only)")
    if name == "auto":
        delta = (card or {}).get(BF16_PARITY_KEY)
        if backend != "torch" or not bf16_supported(device):
            return "fp32"
        if delta is None or not abs(float(delta)) < BF16_PARITY_LIMIT:
            return "fp32"
        return "bf16"
    if name != "fp32" and backend != "torch":
        raise ValueError(f"precision={precision!r} needs backend=torch; backend={backend} runs float32")
    if name == "16" and device.type != "cuda":
        raise ValueError("precision=16 needs a GPU (device=cuda); use precision=bf16 or fp32 on CPU")
    if name == "bf16" and not bf16_supported(device):
        raise ValueError(
            f"precision=bf16: this {device.type.upper()} has no native bfloat16 support "
            "(CPU: AVX512-BF16 or AMX; GPU: Ampere or newer), where bf16 is slower than float32; use precision=fp32"
        )
    return name


def onnxruntime_forward(net: nn.Module, onnx_path: str | Path | None = None, card: Mapping | None = None,
                        threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` as an ONNX Runtime session on CPU, kept only if it reproduces ``net``.

    Without ``onnx_path`` the network is exported on the fly (``lfmri.export.exporters.export_onnx``, to a
    temporary file). Either way the file is checked like ``lfmri-export`` checks it
    (:func:`lfmri.export.exporters.check_onnx` on a real brain slice and a batch of another size): a file
    from another checkpoint, or an export that does not reproduce PyTorch, raises ``ExportError``.
    """
    import onnxruntime as ort

    from lfmri.export.exporters import INPUT_NAME, OUTPUT_NAME, ExportError, check_onnx, export_onnx, reference_images

    net = net.float().eval().to(memory_format=torch.contiguous_format)
    if onnx_path and not Path(onnx_path).is_file():
        raise ValueError(f"onnx_path={onnx_path} does not exist (or is not a file); give an lfmri-export .onnx file of this checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(onnx_path) if onnx_path else export_onnx(net, Path(tmp) / "model.onnx", card)
        try:
            worst = check_onnx(path, net, reference_images(net))
        except ExportError as err:  # a file of another network: named with the option
            if not onnx_path:
                raise
            raise ExportError(f"onnx_path={onnx_path}: {err}") from err
        except Exception as err:  # onnxruntime raises its own types for a corrupt or foreign file
            if not onnx_path:
                raise
            raise ValueError(f"onnx_path={onnx_path} is not an ONNX export of this checkpoint's network "
                             f"({type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''})") from err
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # as many threads as torch uses, so threads=N means the same for both backends
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    log.info("onnxruntime backend: %s, max |ORT - PyTorch| %.2g on the reference slices", onnx_path or "exported on the fly", worst)

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().cpu().contiguous()
        return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])

    return forward


def network_forward(
    net: nn.Module,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    backend: str = "torch",
    channels_last: bool = True,
    card: Mapping | None = None,
    onnx_path: str | Path | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """How ``predict`` and ``evaluate`` run a network: a float32-returning callable for :func:`predict`.

    ``precision`` (see :func:`resolve_precision`): ``bf16`` runs under ``torch.autocast`` with
    ``channels_last`` (oneDNN's bf16 convolutions want NHWC); ``backend=onnxruntime`` runs an ONNX
    export of ``net`` (``onnx_path``, or exported on the fly), CPU only.
    """
    device = torch.device(device)
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; expected one of {list(BACKENDS)}")
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"backend=onnxruntime runs on the CPU; use device=cpu (got device={device})")
    if onnx_path and backend != "onnxruntime":
        raise ValueError("onnx_path is only read with backend=onnxruntime")
    chosen = resolve_precision(precision, device, card, backend)
    if backend == "onnxruntime":
        return onnxruntime_forward(net, onnx_path, card)
    run = channels_last_forward(net) if channels_last or chosen == "bf16" else net
    if chosen == "fp32":
        return run
    dtype = torch.bfloat16 if chosen == "bf16" else torch.float16

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype):
            out = run(x)
        return out.float() if isinstance(out, torch.Tensor) else out

    return forward


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when there is a GPU, else cpu; a device that does not exist here is refused by name."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device name; use auto, cpu, cuda or cuda:N") from err
    if parsed.type == "cpu":
        return device
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r}, but this machine has no usable CUDA GPU; use device=cpu or auto")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device={device!r}, but this machine has {count} GPU(s): cuda:0..cuda:{count - 1}")
        return device
    if parsed.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"device={device!r} is not available here; use auto, cpu, cuda or cuda:N")
