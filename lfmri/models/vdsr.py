"""VDSR (Kim et al., CVPR 2016): 20 3x3 convolutions of 64 channels learning the residual.

Input: the LR image on the HR grid (``input_mode = "upsampled"``), output = input + f(input).
Layers: 1->64, 18 x 64->64, 64->1, ReLU after all but the last, no normalisation. With biases
(default) 665,921 parameters; ``bias=False`` gives the reference reimplementation's 664,704.
He initialisation N(0, sqrt(2 / (9 * out_channels))) as in that reimplementation; the recipe
(SGD 0.1 with gradient clipping) lives in config.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lfmri.contracts import centre_slice, check_context_slices, check_scale


class VDSR(nn.Module):
    input_mode = "upsampled"

    def __init__(self, scale: int = 2, channels: int = 1, features: int = 64, depth: int = 20, bias: bool = True,
                 context_slices: int = 0) -> None:
        """``context_slices``: neighbouring slices on each side read as extra input channels (2.5D);
        the residual is added to the centre slice."""
        super().__init__()
        self.scale = check_scale(self, scale)
        self.context_slices = check_context_slices(context_slices, "VDSR")
        self.channels = channels
        widths = [channels * (2 * self.context_slices + 1)] + [features] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, padding=1, bias=bias) for cin, cout in zip(widths[:-1], widths[1:])
        )
        for conv in self.convs:
            nn.init.normal_(conv.weight, std=math.sqrt(2.0 / (9 * conv.out_channels)))
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs[:-1]:
            y = torch.relu(conv(y))
        return centre_slice(x, self.context_slices, self.channels) + self.convs[-1](y)
