"""The non-learned baselines every evaluation reports: zero-filling and grid-aware bicubic.

Zero-filling (sinc interpolation by zero-padding k-space) is the reference of the MRI SR papers.
Fed the complex LR of a k-space degradation (``input_mode = "lr_complex"``), it reconstructs from
the measured complex data, phase included, so it is slightly stronger than anything computed from
the LR magnitude (0.2-0.4 dB on brains); that is the baseline the papers compare against. Fed a
magnitude image (image-domain degradations), it is plain sinc interpolation, shifted by a phase
ramp onto the pixel-area grid of that degradation.

Bicubic interpolates on the grid the degradation implies: after a centred k-space crop LR pixel j
sits on HR pixel 2j (x2), not where image libraries assume; interpolating on the naive grid costs
2-3 dB, so this baseline asks the degradation.

They live beside the degradations, not among the models, because each is a function of its
degradation (grid, scale, phase) and both evaluation and training need them without a network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lfmri.degrade.degradations import Degradation
from lfmri.degrade.kspace import fft2c, ifft2c, resize_complex
from lfmri.geometry.grid import kspace_axis_map


class ZeroFill(nn.Module):
    """Non-learned baseline: (B, 1, h, w) real or complex LR -> (B, 1, s*h, s*w) magnitude."""

    input_mode = "lr_complex"

    def __init__(self, degradation: Degradation) -> None:
        super().__init__()
        self.degradation = degradation
        self.scale = degradation.grid_scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        step = self.scale
        if step == 1:
            return lr.abs() if lr.is_complex() else lr
        hr_shape = (lr.shape[-2] * step, lr.shape[-1] * step)
        lr = lr.to(torch.complex64)
        # zero-padding puts LR pixel j on HR pixel kspace_map(j); move it to where the
        # degradation put it (identical for k-space degradations, half a pixel for area grids)
        shifts = [
            target.offset - kspace_axis_map(n, m).offset
            for target, n, m in zip(self.degradation.lr_maps(hr_shape), hr_shape, lr.shape[-2:])
        ]
        if any(abs(s) > 1e-9 for s in shifts):
            lr = _shift(lr, [s / step for s in shifts])
        return resize_complex(lr, hr_shape).abs()


def _shift(image: torch.Tensor, shifts: list[float]) -> torch.Tensor:
    """Sub-pixel translation by a k-space phase ramp: output(x) = input(x - shift)."""
    kspace = fft2c(image)
    for axis, shift in zip((-2, -1), shifts):
        n = image.shape[axis]
        freq = (torch.arange(n, device=image.device) - n // 2).float() / n
        ramp = torch.exp(-2j * math.pi * freq * shift).to(torch.complex64)
        kspace = kspace * (ramp[:, None] if axis == -2 else ramp[None, :])
    return ifft2c(kspace)


class Bicubic(nn.Module):
    """Non-learned baseline: (B, C, h, w) LR magnitude -> (B, C, s*h, s*w)."""

    input_mode = "lr"

    def __init__(self, degradation: Degradation) -> None:
        super().__init__()
        self.degradation = degradation
        self.scale = degradation.grid_scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        hr_shape = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        return self.degradation.upsample(lr, hr_shape)


def make_baselines(degradation: Degradation) -> dict[str, nn.Module]:
    """The non-learned references every evaluation reports beside the network, by table name."""
    return {"zerofill": ZeroFill(degradation), "bicubic": Bicubic(degradation)}
