"""What every lfmri network declares, so data, training and evaluation can adapt to it.

A model is a plain ``nn.Module`` with three class or instance attributes:

- ``scale``: the integer up-sampling factor it was built for;
- ``input_mode``: which view of the degraded slice it reads (see ``INPUT_MODES``);
- ``size_multiple`` (optional, default 1): in-plane sizes the network needs; inference pads to it;
- ``context_slices`` (optional, default 0): neighbouring slices on each side it reads with every
  slice (2.5D input, ``2 * context_slices + 1`` channels, the centre slice in the middle); it
  predicts the centre slice. Data, evaluation and predict feed them (``lfmri.geometry.slicing``).

In training mode a model may return an :class:`SROutput` instead of a tensor, to have extra
predictions supervised (MRLN's branch images) or an internal regulariser added (AMIR's expert
load balancing); in eval mode every model returns the image tensor.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from lfmri.errors import ConfigError


@dataclass
class SROutput:
    """A training-mode model output with auxiliary terms.

    ``aux_images``: further predictions of the same target, each scored by the training loss
    (weighted by the module's ``aux_weight``). ``aux_loss``: a model-internal scalar loss, already
    weighted by the model, added to the total as is.
    """

    image: torch.Tensor
    aux_images: tuple[torch.Tensor, ...] = ()
    aux_loss: torch.Tensor | None = None


def as_image(output: torch.Tensor | SROutput) -> torch.Tensor:
    return output.image if isinstance(output, SROutput) else output

INPUT_MODES = {
    "lr": "the magnitude LR image on the LR grid; output is scale x larger",
    "upsampled": "the LR magnitude interpolated onto the HR grid (degradation-aligned); same-size output",
    "lr_complex": "the complex LR image when the degradation has one (k-space), else the LR magnitude",
}


def check_scale(model: nn.Module, scale: int) -> int:
    """Validate ``scale`` against ``model.supported_scales``; fail before any training starts."""
    supported = getattr(model, "supported_scales", None)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"{type(model).__name__}: scale must be a positive integer, got {scale!r}")
    if supported is not None and scale not in supported:
        raise ValueError(
            f"{type(model).__name__} cannot do scale x{scale}; supported scales: "
            + ", ".join(f"x{s}" for s in supported)
        )
    return scale


def input_mode(model: nn.Module) -> str:
    mode = getattr(model, "input_mode", "lr")
    if mode not in INPUT_MODES:
        raise ValueError(f"{type(model).__name__}.input_mode={mode!r}; expected one of {sorted(INPUT_MODES)}")
    return mode


def size_multiple(model: nn.Module) -> int:
    return int(getattr(model, "size_multiple", 1))


def context_slices(model: nn.Module) -> int:
    """Neighbouring slices on each side the network reads with every slice (0: one slice, 2D)."""
    return int(getattr(model, "context_slices", 0))


def check_context_slices(value: int, owner: str) -> int:
    """Validate a ``context_slices`` argument (neighbours on each side, 0 for 2D)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{owner}: context_slices must be a whole number >= 0 (neighbouring slices on each side), got {value!r}")
    return value


def centre_slice(x: torch.Tensor, context: int, channels: int = 1) -> torch.Tensor:
    """The centre slice's ``channels`` of a multi-slice input (B, (2 * context + 1) * channels, h, w)."""
    return x[:, context * channels : (context + 1) * channels] if context else x


def check_context(model: nn.Module, data_context: int) -> None:
    """Fail before training when the data feeds a different number of neighbouring slices than the
    network reads (``context_slices=`` at the top level sets both)."""
    wanted = context_slices(model)
    if wanted != int(data_context):
        supports = "context_slices" in inspect.signature(type(model)).parameters
        hint = ("set the top-level `context_slices=` override, which both read" if supports else
                f"{type(model).__name__} reads one slice only (no context_slices argument); use model=srdensenet, "
                "srcnn, vdsr or espcn for multi-slice input")
        raise ConfigError(f"the data feeds {int(data_context)} neighbouring slice(s) on each side (data.context_slices) "
                          f"but model {type(model).__name__} reads {wanted}; {hint}")


def check_compatible(model: nn.Module, degradation) -> None:
    """Fail before training when the model cannot read what the degradation produces."""
    name = type(model).__name__
    scale = getattr(model, "scale", None)
    if input_mode(model) == "upsampled":
        if scale is not None and scale != degradation.scale:
            raise ConfigError(f"model {name} is configured for x{scale} but the degradation is x{degradation.scale}")
        return
    if scale == degradation.grid_scale:
        return
    if degradation.grid_scale == 1:
        raise ConfigError(
            f"model {name} reads LR-grid input and outputs x{scale}, but {type(degradation).__name__} returns "
            "its LR on the HR grid (zero-filled); use a pre-upsampled model or degradation=kspace/bicubic"
        )
    raise ConfigError(
        f"model {name} is x{scale} but the degradation is x{degradation.grid_scale}; set the top-level "
        "`scale=` override, which both read"
    )


def model_name(model: nn.Module) -> str:
    """The name tables use for a model: the ``model=`` option that built it, else its class."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return str(choice)
    return type(model).__name__.lower()
