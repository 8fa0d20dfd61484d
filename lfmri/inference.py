"""Running a network (or baseline) on whole slices of any size."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lfmri.models.base import as_image, input_mode, size_multiple


def model_input(net: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The view of a degraded batch that ``net`` declares it reads (``lfmri.models.base``)."""
    mode = input_mode(net)
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
