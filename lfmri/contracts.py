"""What every lfmri network declares, so data, training and evaluation can adapt to it.

A model is a plain ``nn.Module`` with three class or instance attributes:

- ``scale``: the integer up-sampling factor it was built for;
- ``input_mode``: which view of the degraded slice it reads (see ``INPUT_MODES``);
- ``size_multiple`` (optional, default 1): in-plane sizes the network needs; inference pads to it.

In training mode a model may return an :class:`SROutput` instead of a tensor, to have extra
predictions supervised (MRLN's branch images) or an internal regulariser added (AMIR's expert
load balancing); in eval mode every model returns the image tensor.
"""

from __future__ import annotations

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
