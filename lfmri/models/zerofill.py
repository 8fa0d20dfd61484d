"""Zero-filling: sinc interpolation by zero-padding k-space; the reference of the MRI SR papers.

Fed the complex LR of a k-space degradation (``input_mode = "lr_complex"``), it reconstructs from
the measured complex data, phase included, so it is slightly stronger than anything computed from
the LR magnitude (0.2-0.4 dB on brains); that is the baseline the papers compare against. Fed a
magnitude image (image-domain degradations), it is plain sinc interpolation, shifted by a phase
ramp onto the pixel-area grid of that degradation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lfmri.data.degradations import Degradation
from lfmri.data.grid import kspace_axis_map
from lfmri.data.kspace import fft2c, ifft2c, resize_complex


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
